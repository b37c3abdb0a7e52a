"""A box's science, warped template and difference, from a solution.

`render_triplet`'s difference is `render`'s, bit for bit; its science is
the visit image's pixels of the box and its template the recreation's
warped template there (the render's window warp is the whole grid's).
"""

from __future__ import annotations

import numpy as np
import pytest

from recreate.inputs import read_butler_inputs
from recreate.numerics.box import PixelBox
from recreate.preview import image_png, triplet_png
from recreate.solution import (
    read_inputs_for_box,
    render,
    render_triplet,
    triplet_result,
)
from tests.support.png import read_png

CASES = ["dp1-full", "dp1-edge", "dp2-release-edge"]


def _boxes(full):
    height, width = full.shape
    x0, y0 = full.xy0
    return [
        PixelBox(x0, y0, 1, 1),
        PixelBox(x0 + 236, y0 + 226, 51, 51),
        PixelBox(x0 + width - 40, y0 + height - 17, 40, 17),
    ]


def _cut(array, xy0, box):
    return np.ascontiguousarray(
        array[
            box.y0 - xy0[1] : box.y0 - xy0[1] + box.height,
            box.x0 - xy0[0] : box.x0 - xy0[0] + box.width,
        ]
    )


def _same_bits(a, b):
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("case", CASES)
def test_a_triplet_is_the_render_the_science_and_the_warped_template(
    products, case
):
    product = products[case]
    solution, template = product.solution, product.template
    assert template is not None
    visit = read_butler_inputs(product.found, config=solution.config()).science
    for box in _boxes(product.full):
        inputs = read_inputs_for_box(product.found, solution, box)
        triplet = render_triplet(solution, inputs, box)
        alone = render(solution, inputs, box)
        assert triplet.difference.plane_hash() == alone.plane_hash(), box
        assert triplet.difference.metadata == alone.metadata, box
        for plane in ("image", "variance", "mask"):
            assert _same_bits(
                getattr(triplet.science, plane),
                _cut(getattr(visit, plane), visit.xy0, box),
            ), (box, plane)
            assert _same_bits(
                getattr(triplet.template, plane),
                _cut(
                    getattr(template.exposure, plane),
                    template.exposure.xy0,
                    box,
                ),
            ), (box, plane)
        for image in (triplet.science, triplet.template):
            assert image.xy0 == (box.x0, box.y0)
            assert image.shape == (box.height, box.width)
        assert triplet.template.mask_planes == template.exposure.mask_planes


def test_a_region_triplet_preview_shows_the_three_images(products):
    product = products["dp1-edge"]
    solution = product.solution
    x0, y0 = product.full.xy0
    box = PixelBox(x0 + 100, y0 + 120, 51, 40)
    inputs = read_inputs_for_box(product.found, solution, box)
    triplet = render_triplet(solution, inputs, box)
    result = triplet_result(solution, triplet, inputs)
    assert result.template is not None
    assert result.template.exposure is triplet.template
    rgb = read_png(triplet_png(result))
    # Three 51-pixel panels, GAP apart, y up.
    gap = (rgb.shape[1] - 3 * box.width) // 2
    assert rgb.shape == (box.height, 3 * box.width + 2 * gap, 3)
    panels = [
        rgb[:, i * (box.width + gap) : i * (box.width + gap) + box.width]
        for i in range(3)
    ]
    assert not np.array_equal(panels[0], panels[2])
    # The difference panel is the difference's own preview.
    difference = triplet.difference
    alone = read_png(
        image_png(
            difference.image,
            mask=difference.mask,
            planes=difference.mask_planes,
        )
    )
    assert np.array_equal(panels[2], alone)
