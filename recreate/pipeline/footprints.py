"""Footprints and peaks of a PSF-smoothed threshold (afw's FootprintSet).

`find_footprints` does steps 1-5 of `recreate.pipeline.detection`'s
notes; it measures nothing, so `set_detection_planes` can use it alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from recreate.exposure import MaskPlanes
from recreate.pipeline.measure import FWHM_PER_SIGMA
from recreate.pipeline.morphology import dilate_box, dilate_disk
from recreate.pipeline.robust import clipped_mean_std

BoolImage = npt.NDArray[np.bool_]
FloatImage = npt.NDArray[np.float32]

#: meas_algorithms SourceDetectionConfig defaults.
N_SIGMA_FOR_KERNEL = 7.0
N_SIGMA_TO_GROW = 2.4
STATS_MASK = ("BAD", "SAT", "EDGE", "NO_DATA")

#: 8-connectivity, as afw's FootprintSet joins diagonal neighbours.
_EIGHT = np.ones((3, 3), dtype=np.bool_)

#: The ``stdev`` threshold samples every n-th row and column: the smoothed
#: image is correlated over the kernel, so the estimate loses nothing.
_STDEV_SUBSAMPLE = 2

#: Neighbour offsets (dy, dx) before a pixel in raster order; the other
#: four are their negatives.
_EARLIER = ((-1, -1), (-1, 0), (-1, 1), (0, -1))

_POLARITIES = ("positive", "negative", "both")
_THRESHOLD_TYPES = ("pixel_stdev", "stdev")


@dataclass(frozen=True, eq=False)
class FootprintSet:
    """Grown, merged footprints of one polarity.

    Attributes
    ----------
    labels
        Label image, footprint ``i`` being label ``i + 1``, 0 elsewhere;
        labels follow the raster order of each footprint's first pixel.
    peak_x, peak_y
        The footprint's brightest peak (in the smoothed image, or its
        negative for negative footprints).
    n_peaks
        Local maxima above threshold in the footprint (at least 1).
    area
        Pixels in each grown footprint.
    negative
        Whether these are negative footprints.
    """

    labels: npt.NDArray[np.int32]
    peak_x: npt.NDArray[np.int64]
    peak_y: npt.NDArray[np.int64]
    n_peaks: npt.NDArray[np.int64]
    area: npt.NDArray[np.int64]
    negative: bool


@dataclass(frozen=True, eq=False)
class Footprints:
    """What a detection pass found, before any measurement.

    Attributes
    ----------
    positive, negative
        The footprints of each polarity searched, else None.
    usable
        Pixels with a finite value, a finite non-negative variance and
        no excluded plane.
    border
        Width of the unsearched border (the smoothing kernel half-width,
        at least 1).
    """

    positive: FootprintSet | None
    negative: FootprintSet | None
    usable: BoolImage
    border: int

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the image searched."""
        height, width = self.usable.shape
        return int(height), int(width)


def smoothing_kernel(sigma: float) -> npt.NDArray[np.float64]:
    """Return afw's 1-D detection kernel: a unit-sum truncated Gaussian.

    The width is ``(int(7 sigma + 0.5) // 2) * 2 + 1``
    (``calculateKernelSize``), always odd.
    """
    width = (int(sigma * N_SIGMA_FOR_KERNEL + 0.5) // 2) * 2 + 1
    offsets = np.arange(width, dtype=np.float64) - width // 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def find_footprints(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    planes: MaskPlanes,
    psf_fwhm: float,
    threshold: float,
    *,
    polarity: str,
    exclude_planes: tuple[str, ...],
    threshold_type: str,
    grow: bool = True,
) -> Footprints:
    """Return the footprints above a PSF-smoothed threshold.

    Parameters are those of `recreate.pipeline.detection.detect`.

    Returns
    -------
    footprints
        The footprints of the polarities asked for.

    Raises
    ------
    ValueError
        If the planes differ in shape or an argument is invalid.
    """
    _check_arguments(image, variance, mask, psf_fwhm, threshold)
    if polarity not in _POLARITIES:
        raise ValueError(f"polarity {polarity!r} not in {_POLARITIES}")
    if threshold_type not in _THRESHOLD_TYPES:
        raise ValueError(
            f"threshold_type {threshold_type!r} not in {_THRESHOLD_TYPES}"
        )
    sigma = psf_fwhm / FWHM_PER_SIGMA
    kernel = smoothing_kernel(sigma)
    border = max(len(kernel) // 2, 1)
    excluded = planes.value_of_present(exclude_planes)
    usable = _usable(image, variance, mask, excluded)
    smoothed, smoothed_var = _smooth(image, variance, usable, kernel)
    blocked = dilate_box(~usable, len(kernel) // 2)
    _block_border(blocked, border)
    smoothed[blocked] = 0.0
    if threshold_type == "pixel_stdev":
        significance = _pixel_significance(smoothed, smoothed_var)
    else:
        stats_bits = planes.value_of_present(STATS_MASK)
        sample = ~blocked & ((mask & stats_bits) == 0)
        significance = _global_significance(smoothed, sample)
    radius = int(N_SIGMA_TO_GROW * sigma + 0.5) if grow else 0
    positive = negative = None
    if polarity in {"positive", "both"}:
        above = significance >= threshold
        positive = _footprint_set(smoothed, above, radius, negative=False)
    if polarity in {"negative", "both"}:
        below = significance <= -threshold
        negative = _footprint_set(-smoothed, below, radius, negative=True)
    return Footprints(
        positive=positive, negative=negative, usable=usable, border=border
    )


def _check_arguments(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    psf_fwhm: float,
    threshold: float,
) -> None:
    """Raise ValueError for planes of different shapes or bad numbers."""
    shapes = {np.shape(image), np.shape(variance), np.shape(mask)}
    if len(shapes) != 1 or np.ndim(image) != 2:
        raise ValueError(
            "image, variance and mask must be 2-D of one shape; got "
            f"{np.shape(image)}, {np.shape(variance)}, {np.shape(mask)}"
        )
    if not (math.isfinite(psf_fwhm) and psf_fwhm > 0):
        raise ValueError(f"psf_fwhm {psf_fwhm} must be finite and > 0")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold {threshold} must be finite and > 0")


def _usable(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    excluded: int,
) -> BoolImage:
    """Return finite pixels with a valid variance and no excluded plane."""
    usable = np.isfinite(image) & np.isfinite(variance)
    with np.errstate(invalid="ignore"):
        usable &= np.asarray(variance) >= 0
    if excluded:
        usable &= (mask & excluded) == 0
    return usable


def _smooth(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    usable: BoolImage,
    kernel: npt.NDArray[np.float64],
) -> tuple[FloatImage, FloatImage]:
    """Return the smoothed image and the variance smoothed with kernel^2.

    Unusable pixels enter as 0; every pixel whose kernel box reaches one
    is blocked afterwards, so the value put there never matters.
    """
    values = np.where(usable, image, 0.0).astype(np.float32)
    var = np.where(usable, variance, 0.0).astype(np.float32)
    return _separable(values, kernel), _separable(var, kernel**2)


def _separable(
    plane: FloatImage, kernel: npt.NDArray[np.float64]
) -> FloatImage:
    """Correlate with ``kernel`` along both axes (float32 out)."""
    rows = ndimage.correlate1d(
        plane, kernel, axis=0, output=np.float32, mode="constant"
    )
    return ndimage.correlate1d(
        rows, kernel, axis=1, output=np.float32, mode="constant"
    )


def _pixel_significance(
    smoothed: FloatImage, smoothed_var: FloatImage
) -> FloatImage:
    """Return smoothed / sqrt(smoothed variance), 0 where that is 0."""
    noise = np.sqrt(smoothed_var)
    positive = noise > 0
    significance = np.zeros_like(smoothed)
    np.divide(smoothed, noise, out=significance, where=positive)
    return significance


def _global_significance(
    smoothed: FloatImage, sample: BoolImage
) -> FloatImage:
    """Return smoothed / its clipped standard deviation (afw ``stdev``)."""
    step = _STDEV_SUBSAMPLE
    sub = sample[::step, ::step]
    _, std = clipped_mean_std(smoothed[::step, ::step][sub])
    if not (math.isfinite(std) and std > 0):
        # Nothing to measure the noise on: nothing can be significant.
        return np.zeros_like(smoothed)
    return smoothed / np.float32(std)


def _block_border(blocked: BoolImage, border: int) -> None:
    """Mark the outer ``border`` pixels as blocked, in place."""
    blocked[:border, :] = True
    blocked[-border:, :] = True
    blocked[:, :border] = True
    blocked[:, -border:] = True


def _footprint_set(
    field: FloatImage, above: BoolImage, radius: int, *, negative: bool
) -> FootprintSet:
    """Label ``above`` grown by ``radius`` and find the footprints' peaks.

    ``field`` is the smoothed image, negated for negative footprints.
    """
    grown = dilate_disk(above, radius)
    labels, count = ndimage.label(grown, structure=_EIGHT)
    labels = labels.astype(np.int32, copy=False)
    pixels = np.flatnonzero(above)
    values = field.ravel()[pixels]
    owner = labels.ravel()[pixels]
    is_peak = _local_maxima(field, pixels, values)
    n_peaks = np.bincount(owner[is_peak], minlength=count + 1)[1:]
    # The brightest peak anchors each footprint. A footprint without a
    # peak (its maximum has a brighter but insignificant neighbour) is
    # anchored on its brightest pixel instead.
    chosen = is_peak | (n_peaks == 0)[owner - 1]
    brightest = _brightest(pixels[chosen], values[chosen], owner[chosen])
    width = field.shape[1]
    return FootprintSet(
        labels=labels,
        peak_x=(brightest % width).astype(np.int64),
        peak_y=(brightest // width).astype(np.int64),
        # A footprint whose maximum has a brighter (but insignificant)
        # neighbour still holds one peak, as afw's always do.
        n_peaks=np.maximum(n_peaks, 1).astype(np.int64),
        area=np.bincount(labels[grown], minlength=count + 1)[1:].astype(
            np.int64
        ),
        negative=negative,
    )


def _brightest(
    pixels: npt.NDArray[np.intp],
    values: npt.NDArray[np.float32],
    owner: npt.NDArray[np.int32],
) -> npt.NDArray[np.intp]:
    """Return the brightest of ``pixels`` for each owner, in owner order.

    Ties go to the first pixel in raster order.
    """
    order = np.lexsort((pixels, -values, owner))
    first = np.ones(len(order), dtype=np.bool_)
    first[1:] = owner[order][1:] != owner[order][:-1]
    return pixels[order[first]]


def _local_maxima(
    field: FloatImage,
    pixels: npt.NDArray[np.intp],
    values: npt.NDArray[np.float32],
) -> npt.NDArray[np.bool_]:
    """Say which of ``pixels`` are local maxima of ``field``.

    Strictly above the neighbours earlier in raster order and at least
    equal to the later ones, so each plateau yields one peak. The pixels
    are never on the image edge (the border is blocked), so every
    neighbour's flat index is valid.
    """
    flat = field.ravel()
    width = field.shape[1]
    is_peak = np.ones(len(pixels), dtype=np.bool_)
    for dy, dx in _EARLIER:
        offset = dy * width + dx
        is_peak &= values > flat[pixels + offset]
        is_peak &= values >= flat[pixels - offset]
    return is_peak
