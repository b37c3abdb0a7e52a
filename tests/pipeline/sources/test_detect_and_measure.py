"""DetectAndMeasureTask's effect on the pixels: DP1 (v29) and DP2 (v30)."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.exposure import MaskPlanes
from recreate.pipeline.recipes import DP1, DP2
from recreate.pipeline.sources.detect_and_measure import detect_and_measure
from recreate.pipeline.sources.detection import set_detection_planes
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA
from tests.pipeline.scenes import gaussian_star_image, psf_flux_for_snr

PLANES = MaskPlanes.afw_default()
SIGMA = 2.0
FWHM = SIGMA * FWHM_PER_SIGMA
NOISE = 10.0
SHAPE = (240, 320)


def _difference(seed=3):
    xs, ys = [60.3, 160.7, 250.2], [70.1, 150.4, 200.9]
    fluxes = [psf_flux_for_snr(s, SIGMA, NOISE) for s in (40.0, -25.0, 60.0)]
    image, variance = gaussian_star_image(
        SHAPE, xs, ys, np.abs(fluxes), SIGMA, NOISE, seed
    )
    # The second source turns negative (a fading star on a difference):
    # twice its flux taken away.
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    blob = np.exp(-((xx - 160.7) ** 2 + (yy - 150.4) ** 2) / (2 * SIGMA**2))
    image -= (2 * abs(fluxes[1]) * blob / (2 * np.pi * SIGMA**2)).astype(
        np.float32
    )
    return image, variance, np.zeros(SHAPE, dtype=np.int32)


def test_dp1_is_the_detection_planes_alone():
    image, variance, mask = _difference()
    measured = detect_and_measure(
        image, variance, mask, PLANES, FWHM, DP1.subtract
    )
    want_mask, want_planes = set_detection_planes(
        image, variance, mask, PLANES, FWHM, DP1.subtract
    )
    assert measured.image is image
    assert measured.background is None
    np.testing.assert_array_equal(measured.mask, want_mask)
    assert measured.planes == want_planes


def test_dp2_subtracts_the_bin40_background_and_zeroes_no_data():
    image, variance, mask = _difference()
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    sky = (30.0 + 0.05 * xx - 0.03 * yy).astype(np.float32)
    no_data = PLANES.value("NO_DATA")
    mask[:, :20] |= no_data
    image = image + sky
    image[:, :20] = np.nan
    planes = PLANES.with_planes("NOT_DEBLENDED")
    mask[100:110, 100:110] |= planes.value("NOT_DEBLENDED", "STREAK")
    measured = detect_and_measure(
        image, variance, mask, planes, FWHM, DP2.subtract
    )
    out = measured.image
    # NO_DATA pixels are 0 (the variance is left alone by the caller).
    assert np.all(out[:, :20] == 0.0)
    # The background left is a small fraction of the noise.
    free = (measured.mask == 0) & np.isfinite(out)
    assert abs(np.median(out[free])) < 0.05 * NOISE
    assert measured.background is not None
    assert measured.background.dtype == np.float32
    np.testing.assert_allclose(
        measured.background[50:190, 60:300], sky[50:190, 60:300], atol=2.0
    )
    # The sources are detected in both polarities after it.
    detected = measured.planes.value("DETECTED")
    negative = measured.planes.value("DETECTED_NEGATIVE")
    assert measured.mask[70, 60] & detected
    assert measured.mask[200, 250] & detected
    assert measured.mask[150, 160] & negative
    # detectAndMeasure cleared NOT_DEBLENDED and STREAK.
    cleared = measured.planes.value("NOT_DEBLENDED", "STREAK")
    assert not np.any(measured.mask & cleared)


def test_dp2_detects_on_bad_pixels_and_dp1_does_not():
    # v30's detection excludes no plane; v29's excludes EDGE and BAD.
    image, variance, mask = _difference()
    mask[190:210, 240:260] |= PLANES.value("BAD")
    dp1 = detect_and_measure(image, variance, mask, PLANES, FWHM, DP1.subtract)
    dp2 = detect_and_measure(image, variance, mask, PLANES, FWHM, DP2.subtract)
    assert not dp1.mask[200, 250] & dp1.planes.value("DETECTED")
    assert dp2.mask[200, 250] & dp2.planes.value("DETECTED")


@pytest.mark.parametrize("seed", [1, 2])
def test_dp2_output_is_deterministic(seed):
    image, variance, mask = _difference(seed)
    first = detect_and_measure(
        image, variance, mask, PLANES, FWHM, DP2.subtract
    )
    second = detect_and_measure(
        image.copy(), variance, mask.copy(), PLANES, FWHM, DP2.subtract
    )
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.mask, second.mask)


def test_dp2_output_does_not_depend_on_thread_count(monkeypatch):
    image, variance, mask = _difference()
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("RECREATE_THREADS", threads)
        measured = detect_and_measure(
            image, variance, mask, PLANES, FWHM, DP2.subtract
        )
        results.append((measured.image.tobytes(), measured.mask.tobytes()))
    assert results[0] == results[1]
