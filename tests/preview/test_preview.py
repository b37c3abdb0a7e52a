"""Previews: zscale, stretches, block means, tints, outlines, PNG bytes."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from astropy.io import fits
from astropy.visualization import ZScaleInterval

from recreate.errors import FormatError, InvalidRequestError
from recreate.exposure import MaskPlanes
from recreate.io.difference import difference_bytes
from recreate.preview import (
    fits_to_png,
    image_png,
    preview_layout,
    strip_png,
)
from recreate.preview.png import encode_png
from recreate.preview.render import (
    BACKGROUND,
    GAP,
    NEGATIVE_OUTLINE,
    POSITIVE_OUTLINE,
    block_mean,
    block_or,
    render_panel,
)
from recreate.preview.scale import grid_sample, stretch_to_bytes, zscale_limits
from tests.support.exposures import make_exposure
from tests.support.png import read_png

PLANES = MaskPlanes.afw_default().with_planes("DETECTED_NEGATIVE")


def _sky(seed: int, shape=(300, 300)) -> np.ndarray:
    """Noise around 100 with bright square sources."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 10.0, shape)
    for y, x in rng.integers(0, min(shape), (40, 2)):
        image[max(0, y - 3) : y + 3, max(0, x - 3) : x + 3] += rng.uniform(
            50, 5000
        )
    return image.astype(np.float32)


def test_the_png_encoder_round_trips_pixels():
    rgb = np.random.default_rng(3).integers(0, 256, (37, 53, 3), np.uint8)
    data = encode_png(rgb)
    assert np.array_equal(read_png(data), rgb)
    assert data == encode_png(rgb.copy())


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.uint8), np.zeros((0, 3, 3), np.uint8)]
)
def test_the_png_encoder_refuses_what_is_not_an_rgb_image(bad):
    with pytest.raises(ValueError, match=r"uint8|empty"):
        encode_png(bad)


@pytest.mark.parametrize("seed", range(4))
def test_zscale_agrees_with_astropy(seed):
    sample = grid_sample(_sky(seed))
    z1, z2 = zscale_limits(sample)
    a1, a2 = ZScaleInterval(n_samples=sample.size).get_limits(sample)
    # The same algorithm; IRAF grows rejections by 1% on each side,
    # astropy by 1% in all, so the upper limit may differ a little.
    assert z1 == pytest.approx(a1, abs=0.03 * (a2 - a1))
    assert z2 == pytest.approx(a2, abs=0.03 * (a2 - a1))
    assert sample[0] <= z1 < np.median(sample) < z2 <= sample[-1]


def test_zscale_of_nothing_or_a_constant_is_harmless():
    assert zscale_limits(np.array([])) == (0.0, 0.0)
    assert zscale_limits(np.full(100, 7.0)) == (7.0, 7.0)
    grey = stretch_to_bytes(np.full((3, 3), 7.0), np.full(100, 7.0), "asinh")
    assert grey.dtype == np.uint8


def test_the_sample_leaves_out_nan_and_masked_pixels():
    image = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    image[::2] = np.nan
    mask = np.zeros(image.shape, np.int32)
    mask[:, :50] = 4
    sample = grid_sample(image, mask, 4, size=10_000)
    assert np.isfinite(sample).all() and sample.size == 50 * 50
    assert (sample % 100 >= 50).all()


def test_asinh_keeps_bright_sources_apart_where_zscale_saturates():
    image = _sky(1)
    sample = grid_sample(image)
    bright = sample[[-1, int(0.99 * sample.size)]]
    assert bright[1] > zscale_limits(sample)[1]
    assert stretch_to_bytes(bright, sample, "zscale").tolist() == [255, 255]
    asinh = stretch_to_bytes(bright, sample, "asinh")
    assert asinh[0] > asinh[1]


def test_an_unknown_stretch_is_named():
    with pytest.raises(InvalidRequestError, match=r"'log'.*zscale, asinh"):
        image_png(np.zeros((4, 4), np.float32), "log")


def test_block_means_skip_nan_and_ors_keep_every_bit():
    image = np.arange(36, dtype=np.float32).reshape(6, 6)
    image[0, 0] = np.nan
    image[3:6, 3:6] = np.nan
    means = block_mean(image, 3)
    assert means.shape == (2, 2)
    assert means[0, 0] == pytest.approx(np.nanmean(image[:3, :3]))
    assert means[1, 0] == pytest.approx(image[3:, :3].mean())
    assert np.isnan(means[1, 1])
    odd = block_mean(np.ones((7, 5), np.float32), 3)
    assert odd.shape == (3, 2) and np.all(odd == 1)
    mask = np.zeros((6, 7), np.int32)
    mask[0, 0], mask[2, 2], mask[5, 6] = 1, 8, np.int32(-(2**31))
    ored = block_or(mask, 3)
    assert ored.shape == (2, 3)
    assert ored[0, 0] == 9 and ored[1, 2] == np.int32(-(2**31))
    assert ored.sum() == 9 + np.int32(-(2**31))


def test_detections_are_outlined_and_rows_flipped():
    image = np.random.default_rng(2).normal(0, 1, (40, 60)).astype(np.float32)
    mask = np.zeros(image.shape, np.int32)
    mask[5:15, 10:20] |= PLANES.value("DETECTED")
    mask[25:35, 40:50] |= PLANES.value("DETECTED_NEGATIVE")
    mask[0, :] |= PLANES.value("NO_DATA")
    image[0, :] = np.nan
    rgb = render_panel(image, "zscale", mask=mask, planes=PLANES)
    up = rgb[::-1]  # back to array rows (y grows up on screen)
    green = np.all(up == POSITIVE_OUTLINE, axis=2)
    magenta = np.all(up == NEGATIVE_OUTLINE, axis=2)
    assert green[5, 12] and green[14, 15] and green[8, 10] and green[8, 19]
    assert not green[8:12, 12:18].any() and green.sum() == 36
    assert magenta[25, 45] and magenta.sum() == 36
    # NO_DATA without a value: the background, tinted blue.
    assert (up[0, 30, 2] > up[0, 30, 0]) and tuple(up[0, 30]) != BACKGROUND


def test_a_4k_detector_fits_in_1024_pixels():
    layout = preview_layout((4000, 4072))
    assert (layout.factor, layout.size) == (4, (1018, 1000))
    triplet = preview_layout((4000, 4072), panels=3)
    assert triplet.factor == 7  # each panel at most 640 pixels a side
    assert triplet.size == (3 * 582 + 2 * triplet.gap, 572)
    assert preview_layout((392, 400)).factor == 1


def test_previews_are_the_same_bytes_from_any_thread():
    image = _sky(4, (500, 700))
    mask = np.zeros(image.shape, np.int32)
    mask[100:120, 100:130] = PLANES.value("DETECTED")
    expected = image_png(image, "asinh", mask=mask, planes=PLANES)
    results: list[bytes] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                image_png(image, "asinh", mask=mask, planes=PLANES)
            )
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected, expected]
    assert read_png(expected).shape == (500, 700, 3)


def test_a_region_fits_renders_with_its_mask():
    exposure = make_exposure((80, 100))
    data = difference_bytes(exposure, {"kernel": "none"}, compress=False)
    png = fits_to_png(data, stretch="asinh")
    rgb = read_png(png)
    assert rgb.shape == (80, 100, 3)
    assert fits_to_png(data) != png
    # A plain FITS image renders too (no mask: grey only).
    plain = io.BytesIO()
    fits.PrimaryHDU(np.asarray(exposure.image)).writeto(plain)
    grey = read_png(fits_to_png(plain.getvalue()))
    assert np.array_equal(grey[..., 0], grey[..., 2])


def test_what_is_not_an_image_is_a_format_error():
    with pytest.raises(FormatError, match="not a FITS file"):
        fits_to_png(b"hello")
    empty = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU()]).writeto(empty)
    with pytest.raises(FormatError, match="no 2-D image"):
        fits_to_png(empty.getvalue())


def test_a_strip_of_large_stamps_is_reduced_as_a_preview_is():
    image = _sky(5, (1100, 1100))
    plain = io.BytesIO()
    fits.PrimaryHDU(image).writeto(plain)
    strip = read_png(strip_png([plain.getvalue()] * 2, 1100, "asinh"))
    # Each tile as a preview of its side: factor 2, 550 pixels.
    assert strip.shape == (550, 2 * 550 + GAP, 3)
    assert np.array_equal(strip[:, :550], read_png(image_png(image, "asinh")))
    with pytest.raises(InvalidRequestError, match="'log'"):
        strip_png([plain.getvalue()], 10, "log")
