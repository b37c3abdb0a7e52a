"""Footprints and peaks of a PSF-smoothed threshold (afw's FootprintSet).

`find_footprints` does steps 1-5 of `recreate.pipeline.sources.detection`'s
notes; it measures nothing, so `set_detection_planes` can use it alone.

The pixel loops are numba kernels that give the bits the plain
scipy/numpy formulation gives: the smoothing is
``scipy.ndimage.correlate1d`` along each axis, the blocked pixels a box
dilation, the footprints a disk dilation labelled with 8-connectivity
(as afw's FootprintSet joins diagonal neighbours) by
``scipy.ndimage.label``'s numbering. Footprints are grown and labelled
as runs of pixels (`recreate.pipeline.sources.footprint_runs`), so their cost
follows the pixels above threshold, not the image; the smoothing and
blocking are in `recreate.numerics.smoothing`. Image kernels run in
blocks of rows on `thread_count` threads; each block writes only its
own rows, so nothing depends on the thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.numerics.arrays import native_mask
from recreate.numerics.robust import clipped_mean_std_of_finite
from recreate.numerics.row_blocks import run_row_blocks
from recreate.numerics.smoothing import (
    ALL_EDGES,
    Edges,
    _block,
    _smooth,
    _usable,
    smoothing_kernel,
)
from recreate.pipeline.sources.footprint_runs import _grow_and_label
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA

BoolImage = npt.NDArray[np.bool_]
FloatImage = npt.NDArray[np.float32]

#: meas_algorithms SourceDetectionConfig defaults.
N_SIGMA_TO_GROW = 2.4
STATS_MASK = ("BAD", "SAT", "EDGE", "NO_DATA")

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
    edges: Edges = ALL_EDGES,
) -> Footprints:
    """Return the footprints above a PSF-smoothed threshold.

    Parameters are those of `recreate.pipeline.sources.detection.detect`;
    ``edges`` says which sides of the arrays are the image's own edges
    (top, bottom, left, right), where the border is not searched: on a
    window of a larger image the others are not (and the pixels within
    the kernel half-width of them come out wrong).

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
    blocked = _block(usable, len(kernel) // 2, border, smoothed, edges)
    if threshold_type == "pixel_stdev":
        significance = _pixel_significance(smoothed, smoothed_var)
    else:
        stats_bits = planes.value_of_present(STATS_MASK)
        significance = _global_significance(
            smoothed, blocked, mask, stats_bits
        )
    radius = int(N_SIGMA_TO_GROW * sigma + 0.5) if grow else 0
    positive = negative = None
    if polarity in {"positive", "both"}:
        above = _pixels_beyond(significance, threshold, negative=False)
        positive = _footprint_set(smoothed, above, radius, negative=False)
    if polarity in {"negative", "both"}:
        below = _pixels_beyond(significance, threshold, negative=True)
        negative = _footprint_set(smoothed, below, radius, negative=True)
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


def _pixel_significance(
    smoothed: FloatImage, smoothed_var: FloatImage
) -> FloatImage:
    """Return smoothed / sqrt(smoothed variance), 0 where that is 0.

    In float32, as numpy's ``np.divide(smoothed, np.sqrt(var))`` gives.
    """
    significance = np.empty_like(smoothed)

    def block(rows: tuple[int, int]) -> None:
        _divide_by_noise(
            smoothed, smoothed_var, rows[0], rows[1], significance
        )

    run_row_blocks(block, smoothed.shape[0])
    return significance


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _divide_by_noise(
    smoothed: FloatImage,
    smoothed_var: FloatImage,
    top: int,
    bottom: int,
    out: FloatImage,
) -> None:
    """Write rows ``top:bottom`` of `_pixel_significance`."""
    zero = np.float32(0.0)
    for r in range(top, bottom):
        for c in range(smoothed.shape[1]):
            noise = np.sqrt(smoothed_var[r, c])
            out[r, c] = smoothed[r, c] / noise if noise > zero else zero


def _global_significance(
    smoothed: FloatImage,
    blocked: BoolImage,
    mask: npt.NDArray[np.integer],
    stats_bits: int,
) -> FloatImage:
    """Return smoothed / its clipped standard deviation (afw ``stdev``).

    The statistic is taken on every `_STDEV_SUBSAMPLE`-th row and column,
    over the pixels neither blocked nor in a ``stats_bits`` plane.
    """
    values = _sample_values(smoothed, blocked, native_mask(mask), stats_bits)
    _, std = clipped_mean_std_of_finite(values)
    if not (math.isfinite(std) and std > 0):
        # Nothing to measure the noise on: nothing can be significant.
        return np.zeros_like(smoothed)
    return smoothed / np.float32(std)


@numba.njit(cache=True, nogil=True)
def _sample_values(
    smoothed: FloatImage,
    blocked: BoolImage,
    mask: npt.NDArray[np.integer],
    stats_bits: int,
) -> npt.NDArray[np.float64]:
    """Return the finite sampled values (float64) in raster order."""
    height, width = smoothed.shape
    step = _STDEV_SUBSAMPLE
    out = np.empty(
        ((height + step - 1) // step) * ((width + step - 1) // step)
    )
    n = 0
    for r in range(0, height, step):
        for c in range(0, width, step):
            value = np.float64(smoothed[r, c])
            if (
                not blocked[r, c]
                and (mask[r, c] & stats_bits) == 0
                and math.isfinite(value)
            ):
                out[n] = value
                n += 1
    return out[:n]


def _footprint_set(
    smoothed: FloatImage,
    pixels: npt.NDArray[np.intp],
    radius: int,
    *,
    negative: bool,
) -> FootprintSet:
    """Grow ``pixels`` by ``radius``, label them and find the peaks.

    ``pixels``: flat indices of the pixels beyond the threshold,
    ascending. A negative footprint's peaks are those of the negated
    smoothed image: only the values looked at are negated.
    """
    labels, area = _grow_and_label(pixels, smoothed.shape, radius)
    count = len(area)
    flat = smoothed.ravel()
    values = -flat[pixels] if negative else flat[pixels]
    owner = labels.ravel()[pixels]
    is_peak = _local_maxima(smoothed, pixels, values, negative=negative)
    n_peaks = np.bincount(owner[is_peak], minlength=count + 1)[1:]
    # The brightest peak anchors each footprint. A footprint without a
    # peak (its maximum has a brighter but insignificant neighbour) is
    # anchored on its brightest pixel instead.
    chosen = is_peak | (n_peaks == 0)[owner - 1]
    brightest = _brightest(pixels[chosen], values[chosen], owner[chosen])
    width = smoothed.shape[1]
    return FootprintSet(
        labels=labels,
        peak_x=(brightest % width).astype(np.int64),
        peak_y=(brightest // width).astype(np.int64),
        # A footprint whose maximum has a brighter (but insignificant)
        # neighbour still holds one peak, as afw's always do.
        n_peaks=np.maximum(n_peaks, 1).astype(np.int64),
        area=area,
        negative=negative,
    )


def _pixels_beyond(
    significance: FloatImage, threshold: float, *, negative: bool
) -> npt.NDArray[np.intp]:
    """Return the flat indices, ascending, of the significant pixels.

    ``significance >= threshold``, or ``<= -threshold`` if ``negative``,
    compared as numpy compares the array with ``threshold`` (in the
    array's type for a Python float), without a whole-image mask; rows
    are scanned on threads.
    """
    dtype = np.result_type(significance, threshold)
    limit = dtype.type(-threshold if negative else threshold)
    found: dict[int, npt.NDArray[np.int64]] = {}

    def block(rows: tuple[int, int]) -> None:
        found[rows[0]] = _rows_beyond(significance, limit, negative, *rows)

    run_row_blocks(block, significance.shape[0])
    parts = [found[top] for top in sorted(found)]
    if not parts:
        return np.empty(0, dtype=np.intp)
    return np.concatenate(parts).astype(np.intp, copy=False)


@numba.njit(cache=True, nogil=True)
def _rows_beyond(
    significance: FloatImage,
    limit: float,
    negative: bool,
    top: int,
    bottom: int,
) -> npt.NDArray[np.int64]:
    """Return the flat indices of rows ``top:bottom`` beyond ``limit``."""
    width = significance.shape[1]
    count = 0
    for r in range(top, bottom):
        for c in range(width):
            value = significance[r, c]
            count += (value <= limit) if negative else (value >= limit)
    out = np.empty(count, dtype=np.int64)
    n = 0
    for r in range(top, bottom):
        for c in range(width):
            value = significance[r, c]
            if (value <= limit) if negative else (value >= limit):
                out[n] = r * width + c
                n += 1
    return out


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
    *,
    negative: bool,
) -> npt.NDArray[np.bool_]:
    """Say which of ``pixels`` are local maxima of ``field``.

    Of ``-field`` if ``negative`` (``values`` are the pixels' own,
    negated then). Strictly above the neighbours earlier in raster
    order and at least equal to the later ones, so each plateau yields
    one peak. The pixels are never on the image edge (the border is
    blocked), so every neighbour's flat index is valid.
    """
    offsets = np.array([dy * field.shape[1] + dx for dy, dx in _EARLIER])
    return _peaks(
        np.ascontiguousarray(field).ravel(),
        np.asarray(pixels, dtype=np.int64),
        values,
        offsets,
        negative,
    )


@numba.njit(cache=True, nogil=True)
def _peaks(
    flat: FloatImage,
    pixels: npt.NDArray[np.int64],
    values: npt.NDArray[np.float32],
    offsets: npt.NDArray[np.int64],
    negative: bool,
) -> npt.NDArray[np.bool_]:
    """Compare each pixel's value with its neighbours (`_local_maxima`)."""
    is_peak = np.ones(len(pixels), dtype=np.bool_)
    for k in range(len(pixels)):
        value, pixel = values[k], pixels[k]
        for offset in offsets:
            earlier, later = flat[pixel + offset], flat[pixel - offset]
            if negative:
                earlier, later = -earlier, -later
            if not (value > earlier and value >= later):
                is_peak[k] = False
                break
    return is_peak
