"""Backgrounds kept as bins and evaluated on a box: the whole image's bits."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.numerics.box import PixelBox
from recreate.pipeline.config import BackgroundConfig
from recreate.pipeline.match.background import (
    binned_background,
    empty_bin_fill,
)
from recreate.pipeline.match.background_grid import (
    background_grid,
    raw_bins,
    window_background,
    window_bins_box,
)

#: DP2's bin-40 background of the difference, and its template's
#: HIGH_VARIANCE background (bin 32, LINEAR).
AKIMA = BackgroundConfig(
    bin_size=40, statistic="MEDIAN", filter_super_pixels=True, bin_count="ceil"
)
LINEAR = BackgroundConfig(
    bin_size=32,
    statistic="MEDIAN",
    interpolation="LINEAR",
    filter_super_pixels=True,
    bin_count="ceil",
)


def _image(shape, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = rng.normal(0.0, 3.0, shape) + 0.01 * xx + np.sin(yy / 50.0)
    good = rng.random(shape) > 0.1
    good[40:130, 60:150] = False  # whole empty bins
    return image.astype(np.float32), good


def _boxes(shape, seed, n=10):
    rng = np.random.default_rng(seed)
    boxes = [PixelBox(0, 0, shape[1], shape[0]), PixelBox(0, 0, 1, 1)]
    for _ in range(n):
        w = int(rng.integers(1, min(120, shape[1]) + 1))
        h = int(rng.integers(1, min(120, shape[0]) + 1))
        x0 = int(rng.integers(0, shape[1] - w + 1))
        y0 = int(rng.integers(0, shape[0] - h + 1))
        boxes.append(PixelBox(x0, y0, w, h))
    return boxes


@pytest.mark.parametrize("shape", [(400, 440), (96, 500), (430, 130)])
def test_a_stored_grid_evaluates_any_box_as_the_whole_image(shape):
    image, good = _image(shape, 1)
    whole = binned_background(image, good, AKIMA)
    grid = background_grid(image, good, AKIMA)
    for box in _boxes(shape, 2):
        got = grid.evaluate(box)
        want = whole[box.y0 : box.y0 + box.height, box.x0 : box.x0 + box.width]
        assert np.array_equal(got, want)


def test_float32_bins_are_what_the_grid_holds():
    image, good = _image((300, 340), 3)
    grid = background_grid(image, good, AKIMA, float32_bins=True)
    values = grid.values
    assert np.array_equal(values, values.astype(np.float32))
    whole = grid.evaluate(PixelBox(0, 0, 340, 300))
    part = grid.evaluate(PixelBox(17, 250, 60, 50))
    assert np.array_equal(part, whole[250:300, 17:77])


@pytest.mark.parametrize("shape", [(400, 440), (100, 300), (64, 64)])
def test_a_window_of_bins_evaluates_a_box_as_the_whole_image(shape):
    image, good = _image(shape, 4)
    whole = binned_background(image, good, LINEAR)
    fill = empty_bin_fill(raw_bins(image, good, LINEAR))
    for box in _boxes(shape, 5):
        window = window_bins_box(shape, LINEAR, box)
        cut = (
            slice(window.y0, window.y0 + window.height),
            slice(window.x0, window.x0 + window.width),
        )
        got = window_background(
            image[cut],
            good[cut],
            (window.x0, window.y0),
            shape,
            LINEAR,
            fill,
            box,
        )
        want = whole[box.y0 : box.y0 + box.height, box.x0 : box.x0 + box.width]
        assert np.array_equal(got, want)


def test_a_window_too_small_for_its_bins_is_refused():
    image, good = _image((200, 200), 6)
    box = PixelBox(100, 100, 10, 10)
    with pytest.raises(ValueError, match="does not hold"):
        window_background(
            image[90:120, 90:120],
            good[90:120, 90:120],
            (90, 90),
            image.shape,
            LINEAR,
            1.0,
            box,
        )
