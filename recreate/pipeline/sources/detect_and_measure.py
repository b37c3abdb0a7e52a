"""What DetectAndMeasureTask leaves on the published difference image.

v29 (DP1): the 5-sigma two-sided detection planes
(`recreate.pipeline.sources.detection.set_detection_planes`), nothing
else. v30 (DP2, ``SubtractConfig.difference_background`` set):

1. a copy of the image has a bin-8 median background subtracted
   (``subtractInitialBackground``); DETECTED, DETECTED_NEGATIVE,
   NOT_DEBLENDED and STREAK are cleared and the copy is detected at 5
   sigma, both polarities, no plane excluded;
2. the copy's mask becomes the difference's, and a bin-40 median
   background, which skips what was just detected, is subtracted from
   the difference itself (``subtractFinalBackground``);
3. cosmic rays would be masked (CR) here: not reproduced (the README
   says why);
4. the final detection re-sets DETECTED and DETECTED_NEGATIVE;
5. the image is set to ``no_data_image_value`` (0) where NO_DATA; the
   variance is kept.

As afw's ``maskedImage -= background.getImageF()`` does, each background
is rounded to float32 before the float32 subtraction. Streak masking
(STREAK) is not reproduced in either recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.pipeline.config import BackgroundConfig, SubtractConfig
from recreate.pipeline.match.background import binned_background
from recreate.pipeline.sources.detection import set_detection_planes


@dataclass(frozen=True, eq=False)
class MeasuredDifference:
    """The published planes: image, mask and the mask's planes.

    ``background`` is the background subtracted from the image (zeros
    when none was), float32.
    """

    image: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int32]
    planes: MaskPlanes
    background: npt.NDArray[np.float32] | None


def detect_and_measure(
    image: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    psf_fwhm: float,
    config: SubtractConfig,
) -> MeasuredDifference:
    """Return the difference image as DetectAndMeasureTask leaves it.

    Parameters
    ----------
    image, variance, mask
        The decorrelated difference image's planes.
    planes
        Its mask planes; detection planes are added where missing.
    psf_fwhm
        PSF FWHM in pixels (the difference image carries the science
        PSF).
    config
        The subtraction configuration (module notes).

    Returns
    -------
    measured
        The image (a new array when it changed), the mask and planes.

    Raises
    ------
    ValueError
        If the planes differ in shape or ``psf_fwhm`` is invalid.
    """
    backgrounds = config.difference_background
    subtracted = None
    if backgrounds is None:
        mask, planes = set_detection_planes(
            image, variance, mask, planes, psf_fwhm, config
        )
    else:
        planes = planes.with_planes(*backgrounds.cleared_planes)
        copy = image - subtracted_background(
            image, mask, planes, backgrounds.initial
        )
        cleared = np.int32(planes.value(*backgrounds.cleared_planes))
        mask, planes = set_detection_planes(
            copy, variance, mask & ~cleared, planes, psf_fwhm, config
        )
        del copy
        subtracted = subtracted_background(
            image, mask, planes, backgrounds.final
        )
        image = image - subtracted
        mask, planes = set_detection_planes(
            image, variance, mask, planes, psf_fwhm, config
        )
    if config.no_data_image_value is not None and "NO_DATA" in planes:
        no_data = (mask & np.int32(planes.value("NO_DATA"))) != 0
        if np.any(no_data):
            image = np.array(image, dtype=np.float32, copy=True)
            image[no_data] = np.float32(config.no_data_image_value)
    return MeasuredDifference(image, mask, planes, subtracted)


def subtracted_background(
    image: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    config: BackgroundConfig,
) -> npt.NDArray[np.float32]:
    """Return SubtractBackgroundTask's background, rounded to float32."""
    ignored = np.int32(planes.value_of_present(config.ignored_planes))
    good = ((mask & ignored) == 0) & np.isfinite(image)
    return binned_background(image, good, config, float32=True)
