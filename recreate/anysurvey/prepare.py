"""Bring any-survey inputs to what the v29 recipe assumes of DP1's.

DP1's inputs are sky-subtracted, carry the DETECTED plane of their
calibration step (so ScaleVariance ignores source pixels), have a PSF,
and a template with real noise and a true variance plane. Files from
elsewhere may not; `prepare_input` makes them so, one input at a time,
and says what it did:

1. *Template variance* (templates only): a constant, or the plane as
   given (a noiseless model's variance is ~0, which ScaleVariance cannot
   rescale), floored at ``variance_floor``.
2. *Sky*: an input whose clipped sky level is more than
   `UNSUBTRACTED_SIGMAS` robust sigmas from zero (or every input, with
   ``background=on``) gets a smooth sky fitted and subtracted: afw's
   binned background (`recreate.pipeline.match.background`, bins of
   `SKY_BIN_SIZE` px), refitted twice with the sources found on the
   subtracted image left out.
3. *PSF*: without a PSF model or image, its FWHM is measured from the
   stars once, here (on the sky-subtracted image), and attached.
4. *Detection*: an input with no DETECTED pixel gets DP1's calibration
   detection (positive, `DETECTION_THRESHOLD` sigma, PSF-smoothed,
   per-pixel variance, grown footprints) before ScaleVariance sees it.
   The pipeline clears the plane again after ScaleVariance, as v29's
   updateMasks does, so only the variance factors change: without it
   every source pixel counts as noise (factors 1.2-1.4 in crowded
   fields, and a variance plane 10-20% too high).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from recreate.anysurvey.options import UNSUBTRACTED_SIGMAS, AnySurveyOptions
from recreate.errors import FormatError
from recreate.exposure import Exposure, MaskPlanes, PsfInfo
from recreate.io.noise import clipped_sky
from recreate.io.plain import VARIANCE_ESTIMATED_KEY
from recreate.pipeline.config import BackgroundConfig
from recreate.pipeline.match.background import binned_background
from recreate.pipeline.sources import measure_psf_fwhm
from recreate.pipeline.sources.footprints import find_footprints

#: DP1 calibrateImage's star detection: 5 sigma, per-pixel variance.
DETECTION_THRESHOLD = 5.0
#: Planes whose pixels neither seed detections nor enter a sky fit.
UNUSABLE_PLANES = ("BAD", "SAT", "NO_DATA", "EDGE", "CR", "INTRP")
#: Bin side of the fitted sky, px (afw SubtractBackgroundTask's default).
SKY_BIN_SIZE = 128
#: The sky fit: ScaleVariance's binned background (v29: MEANCLIP, Akima
#: spline, W // bin + 1 bins) in larger bins.
_SKY_BACKGROUND = BackgroundConfig(bin_size=SKY_BIN_SIZE)
#: Sky refits with the detected sources left out.
SKY_ITERATIONS = 2
#: FWHM assumed to find sources before the PSF is measured, px.
GUESS_FWHM = 4.0
#: At most this many pixels (an even subsample) judge the sky level.
_SKY_SAMPLE = 250_000


def prepare_input(
    exposure: Exposure,
    label: str,
    options: AnySurveyOptions,
    *,
    template: bool = False,
    scale_variance: bool = True,
) -> tuple[Exposure, list[str]]:
    """Return an input ready for the v29 recipe, and what was done to it.

    Parameters
    ----------
    exposure
        A science image or template as read.
    label
        ``"science"`` or ``"template 0"``..., for the notes.
    options
        The any-survey options.
    template
        Whether the input is a template (step 1 applies).
    scale_variance
        Whether ScaleVariance will rescale this input's variance; when it
        will not, its DETECTED plane serves nothing and is not made.

    Returns
    -------
    exposure, notes
        The prepared input (a new object; the same class, so a template
        cut-out stays one) and one note per step that changed something.

    Raises
    ------
    ProcessingError
        If the PSF must be measured and too few stars allow it.
    """
    notes: list[str] = []
    # The recipe flags what no input covers as NO_DATA; afw MaskedImages
    # from elsewhere may lack the plane.
    exposure = replace(
        exposure, mask_planes=exposure.mask_planes.with_planes("NO_DATA")
    )
    if template:
        exposure = _set_template_variance(exposure, options, label, notes)
    exposure = _subtract_sky_if_needed(exposure, options, label, notes)
    if exposure.psf is None:
        fwhm = measure_psf_fwhm(
            exposure.image,
            exposure.variance,
            exposure.mask,
            exposure.mask_planes,
        )
        exposure = replace(exposure, psf=PsfInfo(fwhm=fwhm))
        notes.append(f"{label} PSF FWHM measured from stars: {fwhm:.3f} px")
    if scale_variance and _needs_detection(exposure, options):
        mask, planes = _detected(exposure)
        exposure = replace(exposure, mask=mask, mask_planes=planes)
        notes.append(
            f"{label} had no DETECTED plane: DP1's calibration detection "
            f"({DETECTION_THRESHOLD:g} sigma, positive) set it before "
            "ScaleVariance"
        )
    return exposure, notes


def looks_noiseless(exposure: Exposure) -> bool:
    """Say whether an image looks like a noiseless model.

    True when most usable pixels share one value (the MAD is 0: a model
    that is zero away from its sources) or the median variance is not
    positive. Such an image has no noise for ScaleVariance to measure.
    """
    # Every third pixel each way: as good for a median, 9x cheaper.
    image = exposure.image[::3, ::3]
    variance = exposure.variance[::3, ::3]
    finite = np.isfinite(image) & np.isfinite(variance)
    if not np.any(finite):
        return False
    values = image[finite].astype(np.float64)
    mad = float(np.median(np.abs(values - np.median(values))))
    return mad == 0.0 or float(np.median(variance[finite])) <= 0.0


def _set_template_variance(
    exposure: Exposure,
    options: AnySurveyOptions,
    label: str,
    notes: list[str],
) -> Exposure:
    """Apply ``template_variance`` (a constant) and ``variance_floor``."""
    variance = exposure.variance
    choice = options.template_variance
    if not isinstance(choice, str):
        variance = np.full(exposure.shape, choice, dtype=np.float32)
        variance[~np.isfinite(exposure.image)] = np.inf
        notes.append(f"{label} variance set to {choice:g} (not rescaled)")
    floor = options.variance_floor
    if floor is not None:
        low = variance < floor
        if np.any(low):
            variance = np.where(low, np.float32(floor), variance)
            notes.append(
                f"{label} variance floored at {floor:g} "
                f"({np.count_nonzero(low)} px)"
            )
    if variance is exposure.variance:
        return exposure
    return replace(exposure, variance=variance.astype(np.float32))


def _subtract_sky_if_needed(
    exposure: Exposure,
    options: AnySurveyOptions,
    label: str,
    notes: list[str],
) -> Exposure:
    """Fit and subtract the sky if asked or if it looks unsubtracted."""
    if options.background == "off":
        return exposure
    if options.background == "auto":
        level = sky_level(exposure)
        if level is None or abs(level[0]) <= UNSUBTRACTED_SIGMAS * level[1]:
            return exposure
        reason = (
            f"sky level {level[0]:.4g} is {abs(level[0]) / level[1]:.1f} "
            "sigma from zero"
        )
    else:
        reason = "background=on"
    sky = fit_sky(exposure)
    image = (exposure.image.astype(np.float64) - sky).astype(np.float32)
    notes.append(
        f"{label} sky fitted and subtracted ({reason}; afw binned "
        f"background, {SKY_BIN_SIZE} px bins, mean {float(np.mean(sky)):.4g})"
    )
    variance = exposure.variance
    if exposure.metadata.get(VARIANCE_ESTIMATED_KEY):
        variance, change = _reestimated_sky_variance(exposure, image)
        notes.append(f"{label} estimated variance redone on it ({change})")
    return replace(exposure, image=image, variance=variance)


def _reestimated_sky_variance(
    exposure: Exposure, subtracted: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], str]:
    """Return an estimated variance with its sky term measured again.

    The reader estimated the sky noise from the unsubtracted image, where
    a sky gradient widens the pixel distribution; the same pixels of the
    subtracted image give the noise alone. Only the sky term changes
    (a source Poisson term from the gain stays).
    """
    usable = np.isfinite(exposure.image) & (exposure.mask == 0)
    _, before, _ = clipped_sky(exposure.image[usable].astype(np.float64))
    _, after, _ = clipped_sky(subtracted[usable].astype(np.float64))
    variance = exposure.variance.astype(np.float64) + (after**2 - before**2)
    change = f"sky sigma {before:.4g} -> {after:.4g}"
    return variance.astype(np.float32), change


def sky_level(exposure: Exposure) -> tuple[float, float] | None:
    """Return the clipped sky level and sigma, or None if unmeasurable.

    An even subsample of the usable pixels is enough for a median.
    """
    usable = _usable(exposure)
    values = exposure.image[usable].astype(np.float64)
    step = max(1, values.size // _SKY_SAMPLE)
    values = values[::step]
    if values.size < 25:
        return None
    try:
        sky, sigma, _ = clipped_sky(values)
    except FormatError:  # no scatter at all: a model, or a flat image
        return None
    return (sky, sigma) if sigma > 0 else None


def fit_sky(exposure: Exposure) -> npt.NDArray[np.float64]:
    """Return afw's binned background of the sky, sources left out."""
    usable = _usable(exposure)
    fwhm = exposure.psf.fwhm if exposure.psf is not None else GUESS_FWHM
    sky = binned_background(exposure.image, usable, _SKY_BACKGROUND)
    for _ in range(SKY_ITERATIONS):
        residual = (exposure.image - sky).astype(np.float32)
        sources = _positive_footprints(
            residual, exposure.variance, exposure.mask, exposure, fwhm
        )
        sky = binned_background(
            exposure.image, usable & ~sources, _SKY_BACKGROUND
        )
    return sky


def _needs_detection(exposure: Exposure, options: AnySurveyOptions) -> bool:
    """Say whether the detection step applies to this input.

    A Rubin-layout template read by region has no pixel at all when the
    patch cannot reach the science image: nothing to detect there, and
    reading the patch whole (which has DETECTED pixels) would not
    detect either.
    """
    if options.detect == "off" or exposure.image.size == 0:
        return False
    if options.detect == "on":
        return True
    planes = exposure.mask_planes
    if "DETECTED" not in planes:
        return True
    return not np.any(exposure.mask & np.int32(planes.value("DETECTED")))


def _detected(
    exposure: Exposure,
) -> tuple[npt.NDArray[np.int32], MaskPlanes]:
    """Return the mask and planes with DP1's calibration DETECTED plane."""
    planes = exposure.mask_planes.with_planes("DETECTED")
    bit = np.int32(planes.value("DETECTED"))
    fwhm = exposure.psf.fwhm if exposure.psf is not None else GUESS_FWHM
    found = _positive_footprints(
        exposure.image, exposure.variance, exposure.mask, exposure, fwhm
    )
    mask = (exposure.mask & ~bit) | np.where(found, bit, np.int32(0))
    return mask.astype(np.int32), planes


def _positive_footprints(
    image: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    exposure: Exposure,
    fwhm: float,
) -> npt.NDArray[np.bool_]:
    """Return the grown 5-sigma positive footprints of an image."""
    found = find_footprints(
        image,
        variance,
        mask,
        exposure.mask_planes,
        fwhm,
        DETECTION_THRESHOLD,
        polarity="positive",
        exclude_planes=UNUSABLE_PLANES,
        threshold_type="pixel_stdev",
    )
    if found.positive is None:
        return np.zeros(image.shape, dtype=np.bool_)
    return found.positive.labels > 0


def _usable(exposure: Exposure) -> npt.NDArray[np.bool_]:
    """Return the finite, unflagged pixels with a positive variance."""
    planes: MaskPlanes = exposure.mask_planes
    flagged = np.int32(planes.value_of_present(UNUSABLE_PLANES))
    variance = exposure.variance
    return (
        np.isfinite(exposure.image)
        & np.isfinite(variance)
        & (variance > 0)
        & ((exposure.mask & flagged) == 0)
    )
