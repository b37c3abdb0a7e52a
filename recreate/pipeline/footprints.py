"""Footprints and peaks of a PSF-smoothed threshold (afw's FootprintSet).

`find_footprints` does steps 1-5 of `recreate.pipeline.detection`'s
notes; it measures nothing, so `set_detection_planes` can use it alone.

The pixel loops are numba kernels that give the bits the plain
scipy/numpy formulation gives: the smoothing is
``scipy.ndimage.correlate1d`` along each axis, the blocked pixels a box
dilation, the footprints a disk dilation labelled with 8-connectivity
(as afw's FootprintSet joins diagonal neighbours) by
``scipy.ndimage.label``'s numbering. Footprints are grown and labelled
as runs of pixels, so their cost follows the pixels above threshold,
not the image. Image kernels run in blocks of rows on `thread_count`
threads; each block writes only its own rows, so nothing depends on
the thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.pipeline.measure import FWHM_PER_SIGMA
from recreate.pipeline.robust import (
    clipped_mean_std_of_finite,
    run_row_blocks,
)

BoolImage = npt.NDArray[np.bool_]
FloatImage = npt.NDArray[np.float32]

#: meas_algorithms SourceDetectionConfig defaults.
N_SIGMA_FOR_KERNEL = 7.0
N_SIGMA_TO_GROW = 2.4
STATS_MASK = ("BAD", "SAT", "EDGE", "NO_DATA")

#: The ``stdev`` threshold samples every n-th row and column: the smoothed
#: image is correlated over the kernel, so the estimate loses nothing.
_STDEV_SUBSAMPLE = 2

#: Neighbour offsets (dy, dx) before a pixel in raster order; the other
#: four are their negatives.
_EARLIER = ((-1, -1), (-1, 0), (-1, 1), (0, -1))

#: Widened runs reaching a row up to which their union is found by
#: sorting; beyond, by a coverage sweep across the row.
_FEW_RUNS = 24

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
    blocked = _block(usable, len(kernel) // 2, border, smoothed)
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
    return _usable_pixels(
        _plane(image), _plane(variance), _native_mask(mask), excluded
    )


@numba.njit(cache=True, nogil=True)
def _usable_pixels(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    excluded: int,
) -> BoolImage:
    """Return finite pixels with a finite variance >= 0, not excluded."""
    height, width = image.shape
    usable = np.empty((height, width), dtype=np.bool_)
    for r in range(height):
        for c in range(width):
            var = variance[r, c]
            usable[r, c] = (
                math.isfinite(image[r, c])
                and math.isfinite(var)
                and var >= 0
                and (mask[r, c] & excluded) == 0
            )
    return usable


def _smooth(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    usable: BoolImage,
    kernel: npt.NDArray[np.float64],
) -> tuple[FloatImage, FloatImage]:
    """Return the smoothed image and the variance smoothed with kernel^2.

    Unusable pixels enter as 0; every pixel whose kernel box reaches one
    is blocked afterwards, so the value put there never matters. Each
    plane is taken as float32, correlated along columns then rows with
    zeros beyond the edges, rounding to float32 after each pass: exactly
    ``scipy.ndimage.correlate1d`` (``mode="constant"``) twice, with
    scipy's summation order for a symmetric kernel. Rows are independent,
    so blocks of them run on `thread_count` threads without changing a
    bit.
    """
    if len(kernel) % 2 == 0 or not np.array_equal(kernel, kernel[::-1]):
        raise ValueError("the smoothing kernel must be odd and symmetric")
    height, width = usable.shape
    smoothed = np.empty((height, width), dtype=np.float32)
    smoothed_var = np.empty((height, width), dtype=np.float32)
    planes = (
        _plane(image),
        _plane(variance),
        np.ascontiguousarray(usable),
    )
    weights = (kernel.astype(np.float64), (kernel**2).astype(np.float64))

    def block(rows: tuple[int, int]) -> None:
        _smooth_rows(
            *planes, *weights, rows[0], rows[1], smoothed, smoothed_var
        )

    run_row_blocks(block, height)
    return smoothed, smoothed_var


def _plane(
    plane: npt.NDArray[np.floating],
) -> npt.NDArray[np.floating]:
    """Return ``plane`` as C-ordered, native-endian float32 or float64.

    Other types (integers, float16) become float64, as numpy's float64
    arithmetic would take them; the compiled kernels need native data.
    """
    array = np.asarray(plane)
    if array.dtype.kind == "f" and array.dtype.itemsize in {4, 8}:
        dtype = array.dtype.newbyteorder("=")
    else:
        dtype = np.dtype(np.float64)
    return np.ascontiguousarray(array, dtype=dtype)


def _native_mask(mask: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """Return an integer mask as C-ordered and native-endian."""
    array = np.asarray(mask)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))


@numba.njit(cache=True, nogil=True)
def _smooth_rows(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    usable: BoolImage,
    weights: npt.NDArray[np.float64],
    weights_var: npt.NDArray[np.float64],
    top: int,
    bottom: int,
    smoothed: FloatImage,
    smoothed_var: FloatImage,
) -> None:
    """Smooth rows ``top:bottom`` of both planes (see `_smooth`)."""
    width = usable.shape[1]
    column = np.empty(width)
    padded = np.zeros(width + len(weights) - 1)
    for r in range(top, bottom):
        _smooth_row(image, usable, weights, r, column, padded, smoothed[r])
        _smooth_row(
            variance, usable, weights_var, r, column, padded, smoothed_var[r]
        )


@numba.njit(cache=True, nogil=True)
def _smooth_row(
    plane: npt.NDArray[np.floating],
    usable: BoolImage,
    weights: npt.NDArray[np.float64],
    r: int,
    column: npt.NDArray[np.float64],
    padded: npt.NDArray[np.float64],
    out: FloatImage,
) -> None:
    """Write row ``r`` of ``plane`` smoothed along columns, then the row.

    ``column`` (the row's width) and ``padded`` (the width plus the
    kernel less one, zero at both ends) are work space. Each pass starts
    from the centre tap and adds the symmetric pairs from the outermost
    in, in float64, as scipy does; off-image pixels are 0.
    """
    height, width = usable.shape
    half = len(weights) // 2
    for c in range(width):
        column[c] = _masked(plane, usable, r, c) * weights[half]
    for j in range(half, 0, -1):
        tap = weights[half - j]
        has_above, has_below = r - j >= 0, r + j < height
        for c in range(width):
            above = _masked(plane, usable, r - j, c) if has_above else 0.0
            below = _masked(plane, usable, r + j, c) if has_below else 0.0
            column[c] += (above + below) * tap
    for c in range(width):
        padded[half + c] = np.float32(column[c])
    for c in range(width):
        column[c] = padded[half + c] * weights[half]
    for j in range(half, 0, -1):
        tap = weights[half - j]
        left = padded[half - j : half - j + width]
        right = padded[half + j : half + j + width]
        for c in range(width):
            column[c] += (left[c] + right[c]) * tap
    for c in range(width):
        out[c] = np.float32(column[c])


@numba.njit(cache=True, nogil=True, inline="always")
def _masked(
    plane: npt.NDArray[np.floating], usable: BoolImage, r: int, c: int
) -> float:
    """Return the pixel as float32 (then float64), 0 where not usable."""
    return np.float64(np.float32(plane[r, c])) if usable[r, c] else 0.0


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
    values = _sample_values(smoothed, blocked, _native_mask(mask), stats_bits)
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
    field: FloatImage, above: BoolImage, radius: int, *, negative: bool
) -> FootprintSet:
    """Label ``above`` grown by ``radius`` and find the footprints' peaks.

    ``field`` is the smoothed image, negated for negative footprints.
    """
    pixels = np.flatnonzero(above)
    labels, area = _grow_and_label(pixels, above.shape, radius)
    count = len(area)
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
        area=area,
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


def _block(
    usable: BoolImage, half: int, border: int, smoothed: FloatImage
) -> BoolImage:
    """Return the pixels no detection may reach, zeroing them in place.

    Blocked are those whose ``(2 half + 1)``-square box holds an unusable
    pixel (afw ORs the mask over the kernel box) and the outer
    ``border`` pixels; ``smoothed`` is set to 0 there.
    """
    height, width = usable.shape
    blocked = np.empty((height, width), dtype=np.bool_)
    unusable = np.ascontiguousarray(~usable)

    def block(rows: tuple[int, int]) -> None:
        _box_any(unusable, half, border, rows[0], rows[1], blocked, smoothed)

    run_row_blocks(block, height)
    return blocked


@numba.njit(cache=True, nogil=True)
def _box_any(
    flags: BoolImage,
    half: int,
    border: int,
    top: int,
    bottom: int,
    out: BoolImage,
    smoothed: FloatImage,
) -> None:
    """Set rows ``top:bottom`` of ``out`` where a box or border is hit.

    ``out`` is whether the pixel's ``(2 half + 1)``-square box holds a
    flag (off-image pixels are unflagged) or the pixel lies within
    ``border`` of the edge; ``smoothed`` is zeroed there. Per-column
    counts over the window of rows are updated row by row, then each row
    is windowed by prefix sums: exact integer counts.
    """
    height, width = flags.shape
    counts = np.zeros(width, dtype=np.int64)
    prefix = np.zeros(width + 1, dtype=np.int64)
    for y in range(max(top - half, 0), min(top + half, height)):
        for c in range(width):
            counts[c] += flags[y, c]
    for r in range(top, bottom):
        enter, leave = r + half, r - half - 1
        if enter < height:
            for c in range(width):
                counts[c] += flags[enter, c]
        if leave >= 0:
            for c in range(width):
                counts[c] -= flags[leave, c]
        for c in range(width):
            prefix[c + 1] = prefix[c] + (counts[c] > 0)
        edge_row = r < border or r >= height - border
        _block_row(prefix, half, border, edge_row, out[r], smoothed[r])


@numba.njit(cache=True, nogil=True)
def _block_row(
    prefix: npt.NDArray[np.int64],
    half: int,
    border: int,
    edge_row: bool,
    out: BoolImage,
    smoothed: FloatImage,
) -> None:
    """Set one row of `_box_any` from its column window counts' prefix."""
    width = len(out)
    for c in range(width):
        low, high = max(c - half, 0), min(c + half + 1, width)
        hit = (
            edge_row
            or c < border
            or c >= width - border
            or prefix[high] > prefix[low]
        )
        out[c] = hit
        if hit:
            smoothed[c] = 0.0


def _grow_and_label(
    pixels: npt.NDArray[np.intp], shape: tuple[int, int], radius: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Grow the pixels by afw's circular stencil and label the result.

    Works on runs (row, start, stop) of consecutive pixels, never on the
    whole image: each run of ``pixels`` (flat indices, ascending) spreads
    to rows ``+-dy`` over ``isqrt(radius^2 - dy^2)`` more columns each
    side (the stencil ``dx^2 + dy^2 <= radius^2``); the grown runs are
    merged per row, joined with 8-connectivity (as
    ``ndimage.label(grown, structure=ones((3, 3)))``) and labelled in
    the raster order of each region's first pixel.

    Returns
    -------
    labels, area
        The int32 label image (0 outside) and the pixel count of each
        label.
    """
    height, width = shape
    spans = np.array(
        [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]
        if radius > 0
        else [0],
        dtype=np.int64,
    )
    rows, starts, stops = _runs(np.asarray(pixels, dtype=np.int64), width)
    if radius > 0:
        rows, starts, stops = _grow_runs(
            rows, starts, stops, height, width, spans
        )
    run_labels, count = _label_runs(rows, starts, stops)
    labels = np.zeros(shape, dtype=np.int32)
    area = np.zeros(count, dtype=np.int64)
    _paint_runs(rows, starts, stops, run_labels, labels, area)
    return labels, area


@numba.njit(cache=True, nogil=True)
def _runs(
    pixels: npt.NDArray[np.int64], width: int
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Return the runs (row, start, stop) of ascending flat ``pixels``."""
    n = len(pixels)
    rows = np.empty(n, dtype=np.int64)
    starts = np.empty(n, dtype=np.int64)
    stops = np.empty(n, dtype=np.int64)
    k = -1
    for p in pixels:
        r = p // width
        c = p - r * width
        if k >= 0 and rows[k] == r and stops[k] == c:
            stops[k] = c + 1
        else:
            k += 1
            rows[k], starts[k], stops[k] = r, c, c + 1
    return rows[: k + 1], starts[: k + 1], stops[: k + 1]


@numba.njit(cache=True, nogil=True)
def _grow_runs(
    rows: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
    height: int,
    width: int,
    spans: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Return the runs of the runs dilated by the stencil ``spans``.

    ``spans[|dy|]`` is how far a run widens on each side in row ``+-dy``.
    Each output row takes the union of the widened runs reaching it: a
    few are sorted by insertion, many are counted in a coverage array
    (+1 at each start, -1 at each stop) and read off in one sweep.
    """
    radius = len(spans) - 1
    first = np.searchsorted(rows, np.arange(height + 1))
    most = 0
    for y in range(height):
        low = first[max(y - radius, 0)]
        most = max(most, first[min(y + radius + 1, height)] - low)
    lefts = np.empty(most, dtype=np.int64)
    rights = np.empty(most, dtype=np.int64)
    merged_starts = np.empty(most, dtype=np.int64)
    merged_stops = np.empty(most, dtype=np.int64)
    coverage = np.zeros(width + 1, dtype=np.int64)
    capacity = max(16, 2 * len(rows))
    out_rows = np.empty(capacity, dtype=np.int64)
    out_starts = np.empty(capacity, dtype=np.int64)
    out_stops = np.empty(capacity, dtype=np.int64)
    size = 0
    for y in range(height):
        low = first[max(y - radius, 0)]
        n = first[min(y + radius + 1, height)] - low
        for k in range(n):
            span = spans[abs(rows[low + k] - y)]
            lefts[k] = max(starts[low + k] - span, 0)
            rights[k] = min(stops[low + k] + span, width)
        if n <= _FEW_RUNS:
            m = _merge_few(lefts[:n], rights[:n], merged_starts, merged_stops)
        else:
            m = _merge_many(
                lefts[:n], rights[:n], coverage, merged_starts, merged_stops
            )
        if size + m > capacity:
            capacity = 2 * (size + m)
            out_rows = _grown(out_rows, capacity)
            out_starts = _grown(out_starts, capacity)
            out_stops = _grown(out_stops, capacity)
        out_rows[size : size + m] = y
        out_starts[size : size + m] = merged_starts[:m]
        out_stops[size : size + m] = merged_stops[:m]
        size += m
    return out_rows[:size], out_starts[:size], out_stops[:size]


@numba.njit(cache=True, nogil=True)
def _merge_few(
    lefts: npt.NDArray[np.int64],
    rights: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
) -> int:
    """Write the union of a few intervals as sorted runs; return how many.

    Sorts ``lefts`` and ``rights`` together in place (by insertion).
    """
    for i in range(1, len(lefts)):
        left, right = lefts[i], rights[i]
        j = i - 1
        while j >= 0 and lefts[j] > left:
            lefts[j + 1], rights[j + 1] = lefts[j], rights[j]
            j -= 1
        lefts[j + 1], rights[j + 1] = left, right
    m = 0
    for i in range(len(lefts)):
        if m > 0 and lefts[i] <= stops[m - 1]:
            stops[m - 1] = max(stops[m - 1], rights[i])
        else:
            starts[m], stops[m] = lefts[i], rights[i]
            m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _merge_many(
    lefts: npt.NDArray[np.int64],
    rights: npt.NDArray[np.int64],
    coverage: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
) -> int:
    """Write the union of intervals as sorted runs; return how many.

    Counts cover in ``coverage`` (all zero before and after), from the
    smallest left to the largest right only.
    """
    begin, end = lefts.min(), rights.max()
    for k in range(len(lefts)):
        coverage[lefts[k]] += 1
        coverage[rights[k]] -= 1
    m = 0
    depth = 0
    for c in range(begin, end + 1):
        was_inside = depth > 0
        depth += coverage[c]
        coverage[c] = 0
        if depth > 0 and not was_inside:
            starts[m] = c
        elif was_inside and depth == 0:
            stops[m] = c
            m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _grown(
    values: npt.NDArray[np.int64], capacity: int
) -> npt.NDArray[np.int64]:
    """Return ``values`` copied into a larger array of ``capacity``."""
    out = np.empty(capacity, dtype=np.int64)
    out[: len(values)] = values
    return out


@numba.njit(cache=True, nogil=True)
def _label_runs(
    rows: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int32], int]:
    """Label 8-connected runs (in raster order) from 1, by first run.

    Runs of consecutive rows join when their columns overlap or touch
    diagonally. Union-find keeps the earliest run as each root, so
    labels follow the raster order of each region's first pixel.
    """
    n = len(rows)
    parent = np.arange(n)
    previous = 0  # next run of the previous row that may still touch
    current = 0  # first run of this row
    for i in range(n):
        if i > 0 and rows[i] != rows[i - 1]:
            previous = current if rows[current] == rows[i] - 1 else i
            current = i
        # Runs of a row ascend and never touch, so the previous row's
        # runs wholly left of this one are left of every later one too.
        while previous < current and stops[previous] < starts[i]:
            previous += 1
        j = previous
        while j < current and starts[j] <= stops[i]:
            _union(parent, i, j)
            j += 1
    labels = np.zeros(n, dtype=np.int32)
    count = 0
    for i in range(n):
        root = _find(parent, i)
        if root == i:
            count += 1
            labels[i] = count
        else:
            labels[i] = labels[root]
    return labels, count


@numba.njit(cache=True, nogil=True, inline="always")
def _find(parent: npt.NDArray[np.int64], i: int) -> int:
    """Return the root of ``i``, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True, inline="always")
def _union(parent: npt.NDArray[np.int64], i: int, j: int) -> None:
    """Join the sets of ``i`` and ``j`` under the smaller root."""
    a, b = _find(parent, i), _find(parent, j)
    if a < b:
        parent[b] = a
    elif b < a:
        parent[a] = b


@numba.njit(cache=True, nogil=True)
def _paint_runs(
    rows: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
    run_labels: npt.NDArray[np.int32],
    labels: npt.NDArray[np.int32],
    area: npt.NDArray[np.int64],
) -> None:
    """Write each run's label into ``labels`` and add up the areas."""
    for k in range(len(rows)):
        label = run_labels[k]
        labels[rows[k], starts[k] : stops[k]] = label
        area[label - 1] += stops[k] - starts[k]
