"""PSF-smoothed footprint detection, as afw's SourceDetectionTask does it.

`detect` finds and measures sources; `set_detection_planes` writes the
DETECTED / DETECTED_NEGATIVE planes DetectAndMeasureTask leaves on DP1's
``difference_image``. Both follow ``meas_algorithms`` SourceDetectionTask
(v29) step by step:

1. Smooth with a circular Gaussian of the PSF's sigma, truncated to
   ``(int(7 sigma + 0.5) // 2) * 2 + 1`` pixels and normalised to unit
   sum (``nSigmaForKernel = 7``); the variance is smoothed with the
   squared kernel, as afw convolves a MaskedImage. afw takes sigma from
   the PSF model (its adaptive-moment determinant radius); here it is
   ``psf_fwhm / 2.3548``, so a caller holding a PSF model should pass
   2.3548 times that radius to smooth exactly as afw did.
2. The border where the kernel does not fit is not searched (afw crops
   it and marks it EDGE). Pixels whose kernel box touches an excluded
   plane, a non-finite value or a negative variance cannot be detected:
   afw ORs the mask over the kernel box and zeroes the smoothed image
   there (``removeBadPixels``); NaN would propagate the same way.
3. Threshold: ``pixel_stdev`` compares smoothed / sqrt(smoothed variance)
   with the threshold pixel by pixel; ``stdev`` divides by one clipped
   standard deviation of the smoothed image (afw's STDEVCLIP, ignoring
   BAD, SAT, EDGE, NO_DATA; taken on every other row and column, which
   the kernel's correlation makes as good as all). A pixel is in when it
   reaches the threshold.
4. Footprints are the 8-connected regions above threshold, grown by
   ``int(2.4 sigma + 0.5)`` pixels with a circular stencil and merged
   where the grown regions meet (``nSigmaToGrow = 2.4``,
   ``combinedGrow``, ``isotropicGrow``). The mask planes get the grown
   footprints, as afw's do.
5. Peaks are local maxima of the smoothed image (of its negative, for
   negative footprints) among the pixels above threshold: higher than
   the 4 neighbours before them in raster order and at least as high as
   the 4 after, so a plateau of equal values counts once. A footprint
   is a blend when it holds more than one; its brightest peak anchors
   the measurement (afw sorts peaks by value).
6. Each footprint is measured around that peak on the unsmoothed image:
   a Gaussian-weighted centroid (weight of the PSF sigma, iterated to
   its fixed point, exact for any symmetric profile) and meas_base's
   PsfFlux with a Gaussian PSF of that sigma.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.numerics.smoothing import ALL_EDGES, Edges, smoothing_kernel
from recreate.pipeline.config import SubtractConfig
from recreate.pipeline.sources.footprints import (
    N_SIGMA_TO_GROW,
    Footprints,
    FootprintSet,
    find_footprints,
)
from recreate.pipeline.sources.measure import (
    FWHM_PER_SIGMA,
    cut_stamps,
    gaussian_centroids,
    psf_fluxes,
)

Polarity = Literal["positive", "negative", "both"]
ThresholdType = Literal["pixel_stdev", "stdev"]

#: Planes DetectAndMeasureTask's detection writes.
DETECTION_PLANES = ("DETECTED", "DETECTED_NEGATIVE")

#: Stamp half-size for centroids and fluxes, in PSF sigmas (afw's
#: smoothing kernel reaches 3.5 sigma).
_STAMP_SIGMAS = 3.5


@dataclass(frozen=True, eq=False)
class Detections:
    """Detected sources: one row per (grown, merged) footprint.

    Positive footprints come first, in the raster order of their first
    pixel, then negative ones in the same order.

    Attributes
    ----------
    x, y
        Gaussian-weighted centroids (array pixels) around the brightest
        peak of each footprint.
    peak_x, peak_y
        The brightest peak (of the smoothed image) of each footprint.
    flux, flux_err
        Gaussian-PSF flux (meas_base PsfFlux with a Gaussian of the
        detection sigma) and its error, in image units; negative for
        negative detections.
    snr
        ``|flux| / flux_err``.
    n_peaks
        Peaks in the footprint; more than one means a blend.
    footprint_area
        Pixels in the footprint (grown, unless ``grow`` was False).
    labels
        Footprint label image: row ``i`` is label ``i + 1``; 0 is none.
        Where a positive and a negative footprint overlap, the positive
        one's label is kept.
    negative
        Whether each footprint is a negative detection.
    """

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    peak_x: npt.NDArray[np.int64]
    peak_y: npt.NDArray[np.int64]
    flux: npt.NDArray[np.float64]
    flux_err: npt.NDArray[np.float64]
    snr: npt.NDArray[np.float64]
    n_peaks: npt.NDArray[np.int64]
    footprint_area: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int32]
    negative: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        """Return the number of detections."""
        return len(self.x)


def detect(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    planes: MaskPlanes,
    psf_fwhm: float,
    threshold: float,
    *,
    polarity: Polarity = "positive",
    exclude_planes: tuple[str, ...] = ("EDGE", "BAD"),
    threshold_type: ThresholdType = "pixel_stdev",
    grow: bool = True,
) -> Detections:
    """Detect sources above a PSF-smoothed significance threshold.

    Parameters
    ----------
    image, variance, mask
        The planes, all of one 2-D shape.
    planes
        Names of the mask bits.
    psf_fwhm
        PSF FWHM in pixels; the smoothing sigma is ``fwhm / 2.3548``.
    threshold
        Detection threshold in units of the smoothed image's noise.
    polarity
        Detect positive sources, negative ones or both.
    exclude_planes
        Mask planes (those present) whose pixels cannot seed a detection.
    threshold_type
        ``"pixel_stdev"`` or ``"stdev"`` (see the module notes).
    grow
        Grow the footprints as afw does (step 4). Without growth the
        footprints are the bare regions above threshold, so fewer
        neighbours merge (for picking isolated stars in crowded fields).

    Returns
    -------
    detections
        One row per footprint, measured as `Detections` describes.

    Raises
    ------
    ValueError
        If the planes differ in shape, or ``psf_fwhm``, ``threshold``,
        ``polarity`` or ``threshold_type`` is invalid.
    """
    found = find_footprints(
        image,
        variance,
        mask,
        planes,
        psf_fwhm,
        threshold,
        polarity=polarity,
        exclude_planes=exclude_planes,
        threshold_type=threshold_type,
        grow=grow,
    )
    sets = [s for s in (found.positive, found.negative) if s is not None]
    usable = found.usable
    sigma = psf_fwhm / FWHM_PER_SIGMA
    columns = [_measure(image, variance, usable, s, sigma) for s in sets]
    merged = {
        key: np.concatenate([c[key] for c in columns]) for key in columns[0]
    }
    return Detections(
        x=merged["x"],
        y=merged["y"],
        peak_x=merged["peak_x"].astype(np.int64),
        peak_y=merged["peak_y"].astype(np.int64),
        flux=merged["flux"],
        flux_err=merged["flux_err"],
        snr=merged["snr"],
        n_peaks=merged["n_peaks"].astype(np.int64),
        footprint_area=merged["area"].astype(np.int64),
        labels=_merged_labels(found),
        negative=merged["negative"].astype(np.bool_),
    )


def set_detection_planes(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    planes: MaskPlanes,
    psf_fwhm: float,
    config: SubtractConfig,
    edges: Edges = ALL_EDGES,
) -> tuple[npt.NDArray[np.int32], MaskPlanes]:
    """Return the mask with DetectAndMeasureTask's detection planes.

    DETECTED and DETECTED_NEGATIVE are cleared, then set on the grown
    footprints of a two-sided detection at ``config.detection_threshold``
    (5) sigma, ``pixel_stdev``, excluding ``detection_exclude_planes``
    (EDGE, BAD). As afw's detection does, EDGE is also set on the border
    where the smoothing kernel does not fit.

    Parameters
    ----------
    image, variance, mask
        The difference image's planes.
    planes
        Its mask planes; DETECTED, DETECTED_NEGATIVE and EDGE are added
        if missing.
    psf_fwhm
        PSF FWHM in pixels (the difference image's PSF is the science's).
    config
        The subtraction configuration.
    edges
        Which sides (top, bottom, left, right) are the image's own edges:
        on a window of a difference image, the planes are those of the
        whole image at every pixel at least `detection_halo` from the
        window's other sides.

    Returns
    -------
    mask, planes
        A new int32 mask and the planes it uses.

    Raises
    ------
    ValueError
        If the planes differ in shape or ``psf_fwhm`` is invalid.
    FormatError
        If the mask has no free bit for a missing plane.
    """
    planes = planes.with_planes(*DETECTION_PLANES, "EDGE")
    cleared = np.int32(planes.value(*DETECTION_PLANES))
    out = np.asarray(mask, dtype=np.int32) & ~cleared
    found = find_footprints(
        image,
        variance,
        out,
        planes,
        psf_fwhm,
        config.detection_threshold,
        polarity="both",
        exclude_planes=config.detection_exclude_planes,
        threshold_type="pixel_stdev",
        edges=edges,
    )
    for footprints, name in (
        (found.positive, "DETECTED"),
        (found.negative, "DETECTED_NEGATIVE"),
    ):
        if footprints is not None:
            _mark_labelled(out, footprints.labels, planes.value(name))
    _set_border(out, found.border, np.int32(planes.value("EDGE")), edges)
    return out, planes


def detection_halo(psf_fwhm: float) -> int:
    """Return how far a pixel's detection planes look: kernel and growth.

    A pixel is DETECTED when a pixel within the growth radius is above
    threshold, which depends on the pixels within the smoothing kernel's
    half-width of it (connectivity and peaks do not enter the planes).
    """
    sigma = psf_fwhm / FWHM_PER_SIGMA
    half = len(smoothing_kernel(sigma)) // 2
    return half + int(N_SIGMA_TO_GROW * sigma + 0.5) + 1


def _measure(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    usable: npt.NDArray[np.bool_],
    footprints: FootprintSet,
    sigma: float,
) -> dict[str, npt.NDArray[np.generic]]:
    """Return the measured columns of one polarity's footprints."""
    half = max(2, int(np.ceil(_STAMP_SIGMAS * sigma)))
    stamps = cut_stamps(
        image, variance, usable, footprints.peak_x, footprints.peak_y, half
    )
    sign = -1.0 if footprints.negative else 1.0
    if footprints.negative:
        stamps = stamps.negated()
    dx, dy = gaussian_centroids(stamps, sigma)
    flux, error = psf_fluxes(stamps, dx, dy, sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.abs(flux) / error
    return {
        "x": footprints.peak_x + dx,
        "y": footprints.peak_y + dy,
        "peak_x": footprints.peak_x,
        "peak_y": footprints.peak_y,
        "flux": sign * flux,
        "flux_err": error,
        "snr": snr,
        "n_peaks": footprints.n_peaks,
        "area": footprints.area,
        "negative": np.full(len(flux), footprints.negative),
    }


def _merged_labels(found: Footprints) -> npt.NDArray[np.int32]:
    """Return one label image: positive labels, then negative ones."""
    positive, negative = found.positive, found.negative
    if negative is None:
        if positive is None:
            return np.zeros(found.shape, dtype=np.int32)
        return positive.labels.copy()
    if positive is None:
        return negative.labels.copy()
    return _merge_labels(positive.labels, negative.labels, len(positive.area))


@numba.njit(cache=True, nogil=True)
def _merge_labels(
    positive: npt.NDArray[np.int32],
    negative: npt.NDArray[np.int32],
    offset: int,
) -> npt.NDArray[np.int32]:
    """Return positive labels, else negative ones shifted by ``offset``."""
    height, width = positive.shape
    out = np.empty((height, width), dtype=np.int32)
    for r in range(height):
        for c in range(width):
            if positive[r, c] > 0:
                out[r, c] = positive[r, c]
            elif negative[r, c] > 0:
                out[r, c] = negative[r, c] + offset
            else:
                out[r, c] = 0
    return out


@numba.njit(cache=True, nogil=True)
def _mark_labelled(
    mask: npt.NDArray[np.int32], labels: npt.NDArray[np.int32], bits: int
) -> None:
    """OR ``bits`` into ``mask`` wherever ``labels`` is positive."""
    height, width = mask.shape
    value = np.int32(bits)
    for r in range(height):
        for c in range(width):
            if labels[r, c] > 0:
                mask[r, c] |= value


def _set_border(
    mask: npt.NDArray[np.int32], border: int, bits: np.int32, edges: Edges
) -> None:
    """OR ``bits`` into the outer ``border`` pixels along ``edges``."""
    if border <= 0:
        return
    top, bottom, left, right = edges
    if top:
        mask[:border, :] |= bits
    if bottom:
        mask[-border:, :] |= bits
    if left:
        mask[:, :border] |= bits
    if right:
        mask[:, -border:] |= bits


__all__ = [
    "DETECTION_PLANES",
    "Detections",
    "Polarity",
    "ThresholdType",
    "detect",
    "detection_halo",
    "set_detection_planes",
]
