"""ScaleVarianceTask (meas_algorithms, v29) and its binned background.

`scale_variance` rescales a variance plane so that it matches the noise
seen in the pixels: ``factor = (0.74 * IQR(image / sqrt(var)))^2`` over
unmasked background pixels after subtracting a binned background,
falling back to ``(0.74 * IQR(image) / sqrt(median var))^2`` when that
exceeds the limit.

The background is SubtractBackgroundTask's as ScaleVarianceTask
configures it (`recreate.pipeline.match.background`).

The per-pixel work is compiled with numba and repeats the arithmetic of
the plain numpy formulation operation for operation: the significances
and ``np.percentile`` give the same bits, without whole-image
temporaries. Blocks of rows run on `thread_count` threads; each writes
only its own rows, so no result depends on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.numerics.arrays import native_float_plane, native_mask
from recreate.numerics.order_stats import percentiles
from recreate.numerics.row_blocks import run_row_blocks
from recreate.pipeline.config import BackgroundConfig, SubtractConfig
from recreate.pipeline.match.background import binned_background

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: ScaleVarianceTask's robust width: 0.74 IQR estimates a Gaussian sigma.
IQR_SCALE = 0.74


def scale_variance(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    planes: MaskPlanes,
    config: SubtractConfig,
) -> tuple[npt.NDArray[np.float32], float]:
    """Return the variance rescaled to the observed noise, and the factor.

    Parameters
    ----------
    image, variance, mask
        The planes, of one 2-D shape. NaN or infinite pixels, and those
        with a non-positive variance, are ignored.
    planes
        Names of the mask bits; pixels in any present plane of
        ``config.scale_variance_mask_planes`` are ignored.
    config
        Supplies the bin size, the ignored planes and the limit.

    Returns
    -------
    variance, factor
        The variance times the factor (float32), and the factor; 1 when
        fewer than 2 pixels are usable, as ScaleVarianceTask returns.

    Raises
    ------
    ProcessingError
        If both the pixel-based and the image-based factor exceed
        ``config.scale_variance_limit``, or the factor is 0 (the usable
        pixels are all equal).
    ValueError
        If the planes differ in shape.
    """
    shapes = {np.shape(image), np.shape(variance), np.shape(mask)}
    if len(shapes) != 1 or np.ndim(image) != 2:
        raise ValueError(f"planes must be 2-D of one shape; got {shapes}")
    ignored = planes.value_of_present(config.scale_variance_mask_planes)
    image = native_float_plane(image)
    var = native_float_plane(variance)
    good = _good_pixels(image, var, native_mask(mask), ignored)
    background = binned_background(
        image, good, scale_variance_background(config)
    )
    factor = pixel_factor(image, background, var, good)
    limit = config.scale_variance_limit
    if not (math.isfinite(factor) and factor > 0):
        # afw would zero the variance of a constant image; refuse instead.
        raise ProcessingError(
            f"variance rescaling factor {factor} is not positive: the "
            "unmasked pixels have no spread"
        )
    if factor > limit:
        pixel_based = factor
        factor = image_factor(image, background, var, good)
        if factor > limit:
            raise ProcessingError(
                f"variance rescaling factor {factor:.3f} (image-based; "
                f"pixel-based {pixel_based:.3f}) exceeds the limit {limit}"
            )
    scaled = np.asarray(variance, dtype=np.float32) * np.float32(factor)
    return scaled.astype(np.float32, copy=False), factor


def scale_variance_background(config: SubtractConfig) -> BackgroundConfig:
    """Return the background ScaleVarianceTask subtracts.

    Bin 32, MEANCLIP, AKIMA_SPLINE; the bin count of the recipe's
    meas_algorithms version.
    """
    return BackgroundConfig(
        bin_size=config.scale_variance_bin_size,
        bin_count=config.scale_variance_bin_count,
    )


def pixel_factor(
    image: npt.NDArray[np.floating],
    background: FloatArray,
    variance: npt.NDArray[np.floating],
    good: BoolArray,
) -> float:
    """Return ``(0.74 * IQR(residual / sqrt(variance)))^2`` over ``good``.

    The residual is ``image - background``, in float64.
    """
    if np.count_nonzero(good) < 2:
        return 1.0
    snr = _significances(image, background, variance, good)
    q1, q3 = percentiles(snr, (25.0, 75.0))
    return float((IQR_SCALE * (q3 - q1)) ** 2)


def image_factor(
    image: npt.NDArray[np.floating],
    background: FloatArray,
    variance: npt.NDArray[np.floating],
    good: BoolArray,
) -> float:
    """Return ``(0.74 * IQR(residual) / sqrt(median variance))^2``.

    The residual is ``image - background``, in float64.
    """
    if np.count_nonzero(good) < 2:
        return 1.0
    residual = np.asarray(image, dtype=np.float64)[good] - background[good]
    q1, q3 = np.percentile(residual, (25.0, 75.0))
    median = np.median(np.asarray(variance, dtype=np.float64)[good])
    ratio = IQR_SCALE * (q3 - q1) / math.sqrt(median)
    return float(ratio**2)


def _good_pixels(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    ignored: int,
) -> BoolArray:
    """Return finite pixels with a positive finite variance, unmasked."""
    good = np.empty(image.shape, dtype=np.bool_)

    def block(rows: tuple[int, int]) -> None:
        _good_rows(image, variance, mask, ignored, rows[0], rows[1], good)

    run_row_blocks(block, image.shape[0])
    return good


@numba.njit(cache=True, nogil=True)
def _good_rows(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    ignored: int,
    top: int,
    bottom: int,
    good: BoolArray,
) -> None:
    """Write rows ``top:bottom`` of `_good_pixels`."""
    for r in range(top, bottom):
        for c in range(image.shape[1]):
            var = variance[r, c]
            good[r, c] = (
                math.isfinite(image[r, c])
                and math.isfinite(var)
                and var > 0
                and (mask[r, c] & ignored) == 0
            )


def _significances(
    image: npt.NDArray[np.floating],
    background: FloatArray,
    variance: npt.NDArray[np.floating],
    good: BoolArray,
) -> FloatArray:
    """Return ``(image - background) / sqrt(variance)`` of the good pixels.

    In float64, in raster order (the order does not matter to the
    percentiles taken from them, but it is fixed: each row's values go
    to their own place, whichever thread computes them).
    """
    offsets = np.zeros(good.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.count_nonzero(good, axis=1), out=offsets[1:])
    out = np.empty(int(offsets[-1]))

    def block(rows: tuple[int, int]) -> None:
        _significance_rows(
            image, background, variance, good, offsets, rows[0], rows[1], out
        )

    run_row_blocks(block, good.shape[0])
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _significance_rows(
    image: npt.NDArray[np.floating],
    background: FloatArray,
    variance: npt.NDArray[np.floating],
    good: BoolArray,
    offsets: npt.NDArray[np.int64],
    top: int,
    bottom: int,
    out: FloatArray,
) -> None:
    """Write the values of rows ``top:bottom`` from ``offsets[top]`` on."""
    width = image.shape[1]
    row = np.empty(width)
    for r in range(top, bottom):
        # All pixels first (vectorised), then the good ones are kept.
        for c in range(width):
            residual = np.float64(image[r, c]) - background[r, c]
            row[c] = residual / math.sqrt(np.float64(variance[r, c]))
        n = offsets[r]
        for c in range(width):
            if good[r, c]:
                out[n] = row[c]
                n += 1
