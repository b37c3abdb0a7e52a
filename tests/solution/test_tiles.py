"""One tile of a render: afw's convolution, the difference, decorrelation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from recreate.numerics.box import PixelBox
from recreate.solution.layout import Halos, plan_render, tiles_covering
from recreate.solution.tiles import TileEngine, Window
from tests.pipeline.match.test_convolve import _afw_loop, _kernel

HEIGHT, WIDTH, BORDER = 20, 24, 8


def _inputs(seed=1):
    rng = np.random.default_rng(seed)
    grown = (HEIGHT + 2 * BORDER, WIDTH + 2 * BORDER)
    template = rng.normal(0.0, 10.0, grown).astype(np.float32)
    science = rng.normal(0.0, 10.0, (HEIGHT, WIDTH)).astype(np.float32)
    return template, science


def _engine(kernel, decorrelation, *, tile=8, background=False):
    return TileEngine.build(
        (HEIGHT, WIDTH),
        tile,
        kernel,
        decorrelation,
        subtract_background=background,
    )


def _render(engine, template, science, no_data=None):
    """Every tile of the detector, as the full product computes them."""
    out = np.empty((HEIGHT, WIDTH), np.float32)
    if no_data is None:
        no_data = np.zeros((HEIGHT, WIDTH), bool)
    for tile in tiles_covering(
        PixelBox(0, 0, WIDTH, HEIGHT), (HEIGHT, WIDTH), engine.tile_size
    ):
        rows = slice(tile.y0, tile.y0 + tile.height)
        cols = slice(tile.x0, tile.x0 + tile.width)
        out[rows, cols] = engine.tile(
            tile,
            Window.at(template, -BORDER, -BORDER),
            Window.at(science, 0, 0),
            Window.at(no_data, 0, 0),
        )
    return out


@pytest.mark.parametrize("background", [False, True])
def test_a_delta_decorrelation_leaves_afws_difference(background):
    kernel = _kernel(size=7, height=HEIGHT, width=WIDTH)
    delta = np.zeros((7, 7))
    delta[3, 3] = 1.0
    template, science = _inputs()
    engine = _engine(kernel, delta, background=background)
    got = _render(engine, template, science)
    matched = _afw_loop(template.astype(np.float64), kernel, BORDER)
    model = kernel.background_image((HEIGHT, WIDTH), np.float64)
    expected = science - (model if background else 0.0) - matched
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=2e-4)


def test_the_decorrelation_is_a_correlation_with_zeros_beyond_the_detector():
    kernel = _kernel(size=5, height=HEIGHT, width=WIDTH, spatial=0.0)
    template, science = _inputs(2)
    rng = np.random.default_rng(3)
    decorrelation = rng.random((5, 5))
    delta = np.zeros((5, 5))
    delta[2, 2] = 1.0
    plain = _render(_engine(kernel, delta), template, science)
    got = _render(_engine(kernel, decorrelation), template, science)
    expected = scipy.ndimage.correlate(
        plain.astype(np.float64), decorrelation, mode="constant"
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_no_data_pixels_stay_nan_and_are_zero_for_their_neighbours():
    kernel = _kernel(size=5, height=HEIGHT, width=WIDTH, spatial=0.0)
    template, science = _inputs(4)
    no_data = np.zeros((HEIGHT, WIDTH), bool)
    no_data[6, 9] = True
    decorrelation = np.full((5, 5), 1.0 / 25)
    engine = _engine(kernel, decorrelation)
    got = _render(engine, template, science, no_data)
    assert np.isnan(got[6, 9])
    assert np.isfinite(np.delete(got.ravel(), 6 * WIDTH + 9)).all()
    delta = np.zeros((5, 5))
    delta[2, 2] = 1.0
    plain = _render(_engine(kernel, delta), template, science)
    plain[6, 9] = 0.0
    expected = scipy.ndimage.correlate(
        plain.astype(np.float64), decorrelation, mode="constant"
    )
    np.testing.assert_allclose(got[7, 10], expected[7, 10], rtol=1e-5)


def test_a_plan_reads_only_around_its_tiles():
    halos = Halos(kernel=10, decorrelation=10, detection=6, border=20)
    plan = plan_render(PixelBox(300, 300, 1, 1), (4000, 4072), 256, halos)
    assert plan.tiles == (PixelBox(256, 256, 256, 256),)
    assert plan.detection == PixelBox(294, 294, 13, 13)
    assert plan.difference == PixelBox(246, 246, 276, 276)
    assert plan.template == PixelBox(256, 256, 296, 296)
    edge = plan_render(PixelBox(4071, 0, 1, 1), (4000, 4072), 256, halos)
    assert edge.tiles == (PixelBox(3840, 0, 232, 256),)
    with pytest.raises(ValueError, match="leaves the detector"):
        plan_render(PixelBox(4070, 0, 5, 1), (4000, 4072), 256, halos)
