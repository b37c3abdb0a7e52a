"""The DETECTED planes the simulator writes, as DP1's inputs carry them."""

from __future__ import annotations

import numpy as np

from recreate.exposure import MaskPlanes
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA
from recreate.simulate.calibration import calibration_detected
from tests.pipeline.scenes import gaussian_star_image

PLANES = MaskPlanes.afw_default()
SIGMA = 2.0
NOISE = 10.0
SHAPE = (200, 260)


def _peak_flux(peak_snr):
    """Flux of a Gaussian star whose smoothed peak has this S/N.

    Smoothing white noise of sigma n with a unit-sum Gaussian of the PSF
    width leaves n / (2 sqrt(pi) s); the star's smoothed peak is
    F / (4 pi s^2).
    """
    return peak_snr * NOISE * 2 * np.sqrt(np.pi) * SIGMA


def _scene():
    xs, ys = [50.2, 130.7, 210.4], [60.3, 140.9, 60.8]
    fluxes = [_peak_flux(s) for s in (40.0, 7.0, 3.0)]
    return gaussian_star_image(SHAPE, xs, ys, fluxes, SIGMA, NOISE, seed=2)


def test_visit_detection_keeps_footprints_with_ten_sigma_peaks():
    image, variance = _scene()
    mask = np.zeros(SHAPE, dtype=np.int32)
    detected = calibration_detected(
        image, variance, mask, PLANES, SIGMA * FWHM_PER_SIGMA
    )
    # Bright star: detected, its footprint grown beyond the core.
    assert detected[60, 50]
    assert detected[60, 50 + 8]
    # A 7-sigma star passes 5 sigma but has no 10-sigma peak
    # (includeThresholdMultiplier 2); a 3-sigma one is not found at all.
    assert not detected[141, 131]
    assert not detected[61, 210]
    # Sky is not flagged.
    assert not detected[150, 30]
    assert detected.mean() < 0.05


def test_coadd_thresholds_scale_with_the_number_of_inputs():
    # A deep image of n inputs flags what one input visit would: its
    # thresholds are sqrt(n) times higher in its own noise units.
    image, variance = _scene()
    mask = np.zeros(SHAPE, dtype=np.int32)
    fwhm = SIGMA * FWHM_PER_SIGMA
    one = calibration_detected(image, variance, mask, PLANES, fwhm, 1)
    nine = calibration_detected(image, variance, mask, PLANES, fwhm, 9)
    assert one[60, 50] and nine[60, 50]  # 40 sigma > 30
    assert np.count_nonzero(nine) < np.count_nonzero(one)
    deep = calibration_detected(image, variance, mask, PLANES, fwhm, 25)
    assert not deep.any()  # 40 sigma < 5 x 10
