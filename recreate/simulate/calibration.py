"""The detection planes DP1's inputs carry, as the simulator writes them.

Visit images: DP1's ``visit_image`` is v29's calibrateImage output, whose
last detection (``star_detection``) leaves DETECTED on the mask:
SourceDetectionTask at 5 sigma per pixel (``pixel_stdev``, PSF-smoothed),
positive polarity only (so DETECTED_NEGATIVE stays empty), footprints kept
only when they hold a pixel at 2x that (``includeThresholdMultiplier``
2, so peaks >= 10 sigma), grown by 2.4 sigma, no plane excluded
(``pipe_tasks@29.0.0 calibrateImage.py``, ``meas_algorithms`` detection
defaults).

Template coadds: an afw coadd's mask is the OR of the masks of the input
pixels that entered each output pixel (``statisticsStack``, the
statistic's OR mask), and CompareWarpAssembleCoadd removes only
NOT_DEBLENDED and EDGE before stacking; so a DP1 ``template_coadd`` carries
DETECTED wherever any of its input visits' calibrateImage detected
something. The simulator renders a template as one deep image, not as a
stack of visits, and approximates that union by the same detection on
the template with both thresholds raised by ``sqrt(n_inputs)``: a pixel
at 5 sigma in one 30 s input visit.

Approximations: the multiplier test is applied to the grown, merged
footprints (afw applies it before growing, so a faint footprint that
merges with a bright one survives here); calibrateImage's temporary
local background is not repeated (the images are background-free);
the union over visits of different seeing and noise draws is one
detection at the mean depth.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.pipeline.sources.footprints import find_footprints

#: calibrateImage's star detection (v29): threshold and multiplier.
CALIBRATION_THRESHOLD = 5.0
INCLUDE_THRESHOLD_MULTIPLIER = 2.0


def calibration_detected(
    image: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    psf_fwhm: float,
    n_inputs: int = 1,
) -> npt.NDArray[np.bool_]:
    """Return the pixels calibrateImage's detection marks DETECTED.

    Parameters
    ----------
    image, variance, mask
        The image's planes (nJy).
    planes
        Its mask planes.
    psf_fwhm
        PSF FWHM in pixels (the smoothing width).
    n_inputs
        Visits stacked into the image: the thresholds scale by its square
        root (module notes); 1 for a visit image.

    Returns
    -------
    detected
        Where DETECTED is set.
    """
    scale = math.sqrt(n_inputs)
    threshold = CALIBRATION_THRESHOLD * scale
    footprints = find_footprints(
        image,
        variance,
        mask,
        planes,
        psf_fwhm,
        threshold,
        polarity="positive",
        exclude_planes=(),
        threshold_type="pixel_stdev",
    ).positive
    peaks = find_footprints(
        image,
        variance,
        mask,
        planes,
        psf_fwhm,
        threshold * INCLUDE_THRESHOLD_MULTIPLIER,
        polarity="positive",
        exclude_planes=(),
        threshold_type="pixel_stdev",
        grow=False,
    ).positive
    if footprints is None or peaks is None:
        return np.zeros(image.shape, dtype=np.bool_)
    labels = footprints.labels
    bright = np.unique(labels[(peaks.labels > 0) & (labels > 0)])
    keep = np.zeros(int(labels.max()) + 1, dtype=np.bool_)
    keep[bright] = True
    return keep[labels]
