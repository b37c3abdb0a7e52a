"""Counting the 5-sigma detections that match no injected source.

`false_detections` counts a difference image's detections that no
injected source explains, and how many of those hold charge a cosmic
ray left in the science image: the simulator's repair misses faint rays
(deposits under 5 sigma a pixel), as a pipeline's does, so they are
false detections of the recipe, but no noise made them and noiseless
inputs cannot have them.

`with_gaussian_noise` is the reference the noisy count is read
against: the noiseless difference (the floor's) plus Gaussian noise
drawn from the noisy difference's variance plane, detected as the
recipe detects and counted the same way, averaged over a few draws. The
floor counts none of what noise does on its own: a PSF-smoothed
4072x4000 field of white noise has about 4 excursions beyond 5 sigma of
either sign (the Euler characteristic of its excursion set, Adler's
``A lambda_2 u exp(-u^2/2) / (2 pi)^1.5`` per sign with
``lambda_2 = 1 / (2 sigma^2)``; Worsley et al. 1996, Hum. Brain Mapp.
4, 58), and noise pushes sub-threshold residuals over the threshold (and
some above it under). A noisy count near the reference says the noise
is what the variance plane says; one well above it, that the plane
understates the noise or its tails are heavier than Gaussian.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
from diffim_case import FLAGGED, Case
from scipy import ndimage

from recreate.exposure import Exposure
from recreate.pipeline.config import SubtractConfig
from recreate.pipeline.sources.detect_and_measure import detect_and_measure

#: Noise draws the reference averages: the false count of one draw
#: scatters by 2-4 on a full-size detector, so the mean of four is good
#: to 1-2 (and pooled over the benchmark's five detectors to about 1%).
NOISE_DRAWS = 4


def false_detections(
    case: Case, diff: Exposure, flagged: npt.NDArray[np.bool_]
) -> dict[str, float]:
    """Count 5-sigma footprints that match no injected source.

    Positive and negative detections are one footprint where they touch
    (a dipole counts once). A footprint with a flagged pixel is not
    counted (DP1's source filter drops those); one whose centroid lies
    within 3 PSF FWHMs of an injected source matches it.
    ``false_at_cosmic_rays`` counts the false ones holding charge of a
    cosmic ray the simulator's repair missed.
    """
    planes = diff.mask_planes
    detected = (diff.mask & planes.value("DETECTED", "DETECTED_NEGATIVE")) != 0
    labels, count = ndimage.label(detected, structure=np.ones((3, 3)))
    if count == 0:
        return {
            "detections": 0.0,
            "false_detections": 0.0,
            "false_at_cosmic_rays": 0.0,
        }
    index = np.arange(1, count + 1)
    cy, cx = np.array(ndimage.center_of_mass(detected, labels, index)).T
    flagged_frac = ndimage.mean(flagged, labels, index)
    truth_xy = np.array([(r["x"], r["y"]) for r in case.truth] or [(1e9, 1e9)])
    radius = 3.0 * (diff.psf.fwhm if diff.psf else 5.0)
    distance = np.array(
        [
            np.hypot(truth_xy[:, 0] - x, truth_xy[:, 1] - y).min()
            for x, y in zip(cx, cy, strict=True)
        ]
    )
    false = (flagged_frac == 0) & (distance > radius)
    ray_y, ray_x = case.cosmic_ray_remnants
    at_rays = np.zeros(count + 1, dtype=bool)
    at_rays[labels[ray_y, ray_x]] = True
    return {
        "detections": float(count),
        "flagged_detections": float(np.count_nonzero(flagged_frac > 0)),
        "false_detections": float(np.count_nonzero(false)),
        "false_at_cosmic_rays": float(np.count_nonzero(false & at_rays[1:])),
    }


def with_gaussian_noise(
    case: Case,
    quiet: Exposure,
    config: SubtractConfig,
    draws: int = NOISE_DRAWS,
) -> float:
    """Return the mean false count of the floor plus Gaussian noise.

    Parameters
    ----------
    case
        The benchmark case (its truth and its seed).
    quiet
        The noiseless difference before detection: its image, the noisy
        difference's variance, its mask without detection planes, and
        the science PSF.
    config
        The recipe's subtraction configuration (its detection step).
    draws
        Noise draws to average.

    Returns
    -------
    count
        The mean, over the draws, of `false_detections` on the image
        plus noise of exactly the variance plane, detected as the recipe
        detects (DP2's backgrounds included).
    """
    if quiet.psf is None:
        msg = "the noise reference needs the science PSF"
        raise RuntimeError(msg)
    variance = quiet.variance
    usable = np.isfinite(variance) & (variance > 0)
    sigma = np.sqrt(np.where(usable, variance, 0.0)).astype(np.float32)
    flagged = (quiet.mask & quiet.mask_planes.value_of_present(FLAGGED)) != 0
    counts = []
    for draw in range(draws):
        rng = np.random.default_rng([case.plan.seed, case.detector, draw])
        noise = rng.standard_normal(quiet.shape, dtype=np.float32)
        measured = detect_and_measure(
            quiet.image + noise * sigma,
            variance,
            quiet.mask,
            quiet.mask_planes,
            quiet.psf.fwhm,
            config,
        )
        detected = replace(
            quiet,
            image=measured.image,
            mask=measured.mask,
            mask_planes=measured.planes,
        )
        counts.append(false_detections(case, detected, flagged))
    return float(np.mean([c["false_detections"] for c in counts]))
