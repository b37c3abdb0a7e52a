"""A region's product file is the reference writer's, byte for byte.

Regions and full products in the default ``dp1`` format are written by
the direct writer (`recreate.io.direct`); each must be the file
astropy's reference writer makes of the same result, for each recipe.
"""

from __future__ import annotations

import hashlib

import pytest

from recreate.formats import get_format
from recreate.io.difference import difference_bytes
from recreate.io.direct import direct_difference_bytes
from recreate.numerics.box import PixelBox
from recreate.solution import read_inputs_for_box, render, rendered_result

CASES = ["dp1-full", "dp1-edge", "dp2-full", "dp2-release-edge"]


def _boxes(full):
    """Return 1x1 corners, edge-clipped, seam-crossing and odd boxes."""
    height, width = full.shape
    x0, y0 = full.xy0
    detector = PixelBox(x0, y0, width, height)
    boxes = [
        PixelBox(x0, y0, 1, 1),
        PixelBox(x0 + width - 1, y0 + height - 1, 1, 1),
        PixelBox(x0 - 20, y0 + 40, 51, 51),
        PixelBox(x0 + width - 30, y0 + height - 10, 51, 51),
        PixelBox(x0 + 230, y0 + 225, 51, 51),
        PixelBox(x0 + 17, y0 + 101, 37, 23),
    ]
    return [box.intersection(detector) for box in boxes]


def _sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("case", CASES)
def test_region_files_are_the_reference_writers(products, case):
    product = products[case]
    solution = product.solution
    kernel = solution.kernel.to_dict()
    for box in _boxes(product.full):
        inputs = read_inputs_for_box(product.found, solution, box)
        result = rendered_result(
            solution, render(solution, inputs, box), inputs
        )
        reference = difference_bytes(result.exposure, kernel, compress=False)
        direct = direct_difference_bytes(result.exposure, kernel)
        assert direct is not None, box
        assert _sha(direct) == _sha(reference), box
        assert _sha(get_format("dp1").to_bytes(result)) == _sha(reference)


@pytest.mark.parametrize("case", ["dp1-edge", "dp2-release-edge"])
def test_a_full_product_file_is_the_reference_writers(products, case):
    product = products[case]
    kernel = product.solution.kernel.to_dict()
    reference = difference_bytes(product.full, kernel, compress=False)
    direct = direct_difference_bytes(product.full, kernel)
    assert direct is not None
    assert _sha(direct) == _sha(reference)
