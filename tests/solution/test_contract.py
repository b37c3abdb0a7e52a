"""The contract: a region's planes are the full product's, bit for bit.

For each recipe (and a DP2-like repository, whose visit images are
``lsst.images`` VisitImages), on a detector the template covers wholly
and one it covers in part: 1x1 boxes at the corners, the whole
detector, boxes across the tile seams, on the detector's edges, at the
template's NO_DATA boundary, on saturated stars, and random boxes, each
rendered from the stored solution with only its inputs read.
"""

from __future__ import annotations

import numpy as np
import pytest

from recreate.errors import InvalidRequestError
from recreate.numerics.box import PixelBox
from recreate.solution import (
    read_inputs_for_box,
    read_inputs_whole,
    render,
    render_full,
)

CASES = ["dp1-full", "dp1-edge", "dp2-full", "dp2-release-edge"]


def _boxes(full, seed):
    """Return named boxes of parent pixels (see the module notes)."""
    height, width = full.shape
    x0, y0 = full.xy0
    tile = 256
    boxes = {
        "corner-low": PixelBox(x0, y0, 1, 1),
        "corner-high": PixelBox(x0 + width - 1, y0 + height - 1, 1, 1),
        "whole": PixelBox(x0, y0, width, height),
        "seams": PixelBox(x0 + tile - 20, y0 + tile - 30, 51, 51),
        "left-edge": PixelBox(x0, y0 + 100, 30, 60),
        "top-edge": PixelBox(x0 + 150, y0 + height - 17, 70, 17),
    }
    planes = full.mask_planes
    for name, plane in (("no-data", "NO_DATA"), ("saturated", "SAT")):
        flagged = (full.mask & planes.value(plane)) != 0
        # A flagged pixel beside an unflagged one: the plane's boundary.
        edge = flagged & ~np.roll(flagged, 1, axis=1)
        ys, xs = np.nonzero(edge[:, 1:])
        if len(xs):
            cx, cy = int(xs[len(xs) // 2]) + 1, int(ys[len(ys) // 2])
            boxes[name] = PixelBox(x0 + cx - 12, y0 + cy - 12, 25, 25)
    rng = np.random.default_rng(seed)
    for index in range(6):
        w, h = (int(v) for v in rng.integers(1, 80, size=2))
        bx = int(rng.integers(0, width - w + 1))
        by = int(rng.integers(0, height - h + 1))
        boxes[f"random-{index}"] = PixelBox(x0 + bx, y0 + by, w, h)
    detector = PixelBox(x0, y0, width, height)
    return {k: b.intersection(detector) for k, b in boxes.items()}


def _same_bits(a, b):
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("case", CASES)
def test_every_region_is_the_full_products_pixels(products, case):
    product = products[case]
    full, solution = product.full, product.solution
    boxes = _boxes(full, seed=CASES.index(case))
    if case.endswith("edge"):
        assert "no-data" in boxes, "the edge case must reach NO_DATA"
    if case.endswith("full"):
        assert "saturated" in boxes, "the full case must hold SAT stars"
    x0, y0 = full.xy0
    for name, box in boxes.items():
        inputs = read_inputs_for_box(product.found, solution, box)
        region = render(solution, inputs, box)
        cut = (
            slice(box.y0 - y0, box.y0 - y0 + box.height),
            slice(box.x0 - x0, box.x0 - x0 + box.width),
        )
        for plane in ("image", "variance", "mask"):
            want = np.ascontiguousarray(getattr(full, plane)[cut])
            assert _same_bits(getattr(region, plane), want), (name, plane)
        assert region.mask_planes == full.mask_planes, name
        assert region.xy0 == (box.x0, box.y0), name
        # The region's WCS puts its pixels where the product's are.
        ra, dec = full.wcs.pixel_to_world_values(box.x0 - x0, box.y0 - y0)
        assert np.allclose(region.wcs.world_to_pixel_values(ra, dec), 0.0)


@pytest.mark.parametrize("case", ["dp1-edge", "dp2-release-edge"])
def test_the_whole_detector_from_a_stored_solution_is_the_product(
    products, case
):
    product = products[case]
    config = product.solution.config()
    rendered = render_full(
        product.solution, read_inputs_whole(product.found, config)
    )
    assert rendered.plane_hash() == product.full.plane_hash()
    assert rendered.metadata == product.full.metadata


def test_a_region_reads_only_the_rows_it_needs(products):
    product = products["dp1-full"]
    box = PixelBox(product.full.xy0[0] + 10, product.full.xy0[1] + 10, 5, 5)
    inputs = read_inputs_for_box(product.found, product.solution, box)
    # One tile and the decorrelation halo, not the detector.
    assert inputs.science.shape[0] < product.full.shape[0]
    assert all(p.image.size < 300 * 300 for p in inputs.patches)


@pytest.mark.parametrize(
    "box",
    [PixelBox(-5, -5, 3, 3), PixelBox(0, 0, 0, 4), PixelBox(390, 0, 20, 5)],
)
def test_a_box_leaving_the_detector_is_refused_by_name(products, box):
    product = products["dp1-full"]
    inputs = read_inputs_whole(product.found, product.solution.config())
    with pytest.raises(InvalidRequestError, match=r"box \("):
        render(product.solution, inputs, box)


@pytest.mark.parametrize("threads", ["1", "3"])
def test_regions_from_concurrent_threads_and_any_thread_count(
    products, monkeypatch, threads
):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("RECREATE_THREADS", threads)
    product = products["dp2-release-edge"]
    full, solution = product.full, product.solution
    x0, y0 = full.xy0
    boxes = [PixelBox(x0 + 20 * k, y0 + 240, 40, 40) for k in range(6)]

    def one(box):
        inputs = read_inputs_for_box(product.found, solution, box)
        return render(solution, inputs, box).image.tobytes()

    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(one, boxes))
    for box, image in zip(boxes, got, strict=True):
        cut = full.image[
            box.y0 - y0 : box.y0 - y0 + 40, box.x0 - x0 : box.x0 - x0 + 40
        ]
        assert image == np.ascontiguousarray(cut).tobytes()


@pytest.mark.parametrize(
    ("name", "threads"),
    [("dp1-edge", "2"), ("dp2-release-edge", "1"), ("dp2-release-edge", "2")],
)
def test_the_same_inputs_give_the_same_solution(
    products, monkeypatch, name, threads
):
    # With two threads the science side of the solve runs beside the
    # template warp and the levels beside the fit; with one, in order.
    from recreate.inputs import read_butler_inputs
    from recreate.solution import solve

    monkeypatch.setenv("RECREATE_THREADS", threads)
    product = products[name]
    config = product.solution.config()
    inputs = read_butler_inputs(product.found, config=config)
    again = solve(
        inputs.science, inputs.templates, config=config, inputs=inputs.refs
    ).solution
    assert again.content_hash() == product.solution.content_hash()
