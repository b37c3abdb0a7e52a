"""ScaleVarianceTask (meas_algorithms, v29) and its binned background.

`scale_variance` rescales a variance plane so that it matches the noise
seen in the pixels: ``factor = (0.74 * IQR(image / sqrt(var)))^2`` over
unmasked background pixels after subtracting a binned background,
falling back to ``(0.74 * IQR(image) / sqrt(median var))^2`` when that
exceeds the limit.

The background is SubtractBackgroundTask's as ScaleVarianceTask
configures it (binSize 32, useApprox False, REDUCE_INTERP_ORDER, the
default statistic MEANCLIP and interpolation AKIMA_SPLINE), computed the
way afw's BackgroundMI does:

* ``nx = width // binSize + 1`` bins across (likewise down), bin ``i``
  ending at ``((i + 1) * width + nx // 2) // nx``, its centre at
  ``start + size / 2 - 0.5``;
* each bin's value is the 3-sigma, 3-iteration clipped mean of its
  unmasked finite pixels (NaN for an empty bin);
* each column of bins is interpolated along y over the non-NaN bins,
  then each image row along x over the columns that have a value, with
  an Akima spline (a natural cubic spline for 3-4 points, linear for 2,
  constant for 1: REDUCE_INTERP_ORDER);
* beyond the first and last bin centres the value is extrapolated
  quadratically from the end point's first and second derivatives, as
  afw's Interpolate does.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.interpolate import Akima1DInterpolator, CubicSpline, PPoly

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.pipeline.config import SubtractConfig
from recreate.pipeline.robust import clipped_means_by_row

FloatArray = npt.NDArray[np.float64]

#: ScaleVarianceTask's robust width: 0.74 IQR estimates a Gaussian sigma.
IQR_SCALE = 0.74

#: Fewest points for each interpolation style (afw's
#: ``lookupMinInterpPoints``): Akima 5, cubic spline 3, linear 2.
_MIN_AKIMA = 5
_MIN_CUBIC = 3


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
    image64 = np.asarray(image, dtype=np.float64)
    var64 = np.asarray(variance, dtype=np.float64)
    good = np.isfinite(image64) & np.isfinite(var64) & ((mask & ignored) == 0)
    with np.errstate(invalid="ignore"):
        good &= var64 > 0
    background = binned_background(
        image64, good, config.scale_variance_bin_size
    )
    residual = image64 - background
    factor = pixel_factor(residual, var64, good)
    limit = config.scale_variance_limit
    if not (math.isfinite(factor) and factor > 0):
        # afw would zero the variance of a constant image; refuse instead.
        raise ProcessingError(
            f"variance rescaling factor {factor} is not positive: the "
            "unmasked pixels have no spread"
        )
    if factor > limit:
        pixel_based = factor
        factor = image_factor(residual, var64, good)
        if factor > limit:
            raise ProcessingError(
                f"variance rescaling factor {factor:.3f} (image-based; "
                f"pixel-based {pixel_based:.3f}) exceeds the limit {limit}"
            )
    scaled = np.asarray(variance, dtype=np.float32) * np.float32(factor)
    return scaled.astype(np.float32, copy=False), factor


def pixel_factor(
    residual: FloatArray, variance: FloatArray, good: npt.NDArray[np.bool_]
) -> float:
    """Return ``(0.74 * IQR(residual / sqrt(variance)))^2`` over ``good``."""
    if np.count_nonzero(good) < 2:
        return 1.0
    snr = residual[good] / np.sqrt(variance[good])
    q1, q3 = np.percentile(snr, (25.0, 75.0))
    return float((IQR_SCALE * (q3 - q1)) ** 2)


def image_factor(
    residual: FloatArray, variance: FloatArray, good: npt.NDArray[np.bool_]
) -> float:
    """Return ``(0.74 * IQR(residual) / sqrt(median variance))^2``."""
    if np.count_nonzero(good) < 2:
        return 1.0
    q1, q3 = np.percentile(residual[good], (25.0, 75.0))
    ratio = IQR_SCALE * (q3 - q1) / math.sqrt(np.median(variance[good]))
    return float(ratio**2)


def binned_background(
    image: FloatArray, good: npt.NDArray[np.bool_], bin_size: int
) -> FloatArray:
    """Return afw's interpolated binned background (see module notes).

    Parameters
    ----------
    image
        The image, float64.
    good
        Pixels that may enter the bin statistics.
    bin_size
        Nominal bin side in pixels.

    Returns
    -------
    background
        Same shape as ``image``; all zero when no bin has a value.
    """
    height, width = image.shape
    rows = _bin_edges(height, height // bin_size + 1)
    cols = _bin_edges(width, width // bin_size + 1)
    grid = _bin_means(image, good, rows, cols)
    y_nodes = _bin_centres(rows)
    x_nodes = _bin_centres(cols)
    y_out = np.arange(height, dtype=np.float64)
    x_out = np.arange(width, dtype=np.float64)
    # afw interpolates each column of bins in y first, then each row in x.
    columns = []
    kept_x = []
    for j in range(grid.shape[1]):
        finite = np.isfinite(grid[:, j])
        if np.any(finite):
            columns.append(
                _interpolate(y_nodes[finite], grid[finite, j], y_out)
            )
            kept_x.append(x_nodes[j])
    if not columns:
        return np.zeros(image.shape)
    by_column = np.stack(columns, axis=0)  # (n_columns, height)
    return _interpolate(np.asarray(kept_x), by_column, x_out).T


def _bin_edges(length: int, count: int) -> npt.NDArray[np.intp]:
    """Return the ``count + 1`` bin boundaries afw's BackgroundMI uses."""
    ends = [
        min(((i + 1) * length + count // 2) // count, length)
        for i in range(count)
    ]
    return np.array([0, *ends], dtype=np.intp)


def _bin_centres(edges: npt.NDArray[np.intp]) -> FloatArray:
    """Return afw's bin centres: start + size / 2 - 0.5."""
    sizes = np.diff(edges)
    return edges[:-1] + 0.5 * sizes - 0.5


def _bin_means(
    image: FloatArray,
    good: npt.NDArray[np.bool_],
    rows: npt.NDArray[np.intp],
    cols: npt.NDArray[np.intp],
) -> FloatArray:
    """Return the clipped mean of every bin, NaN for an empty one.

    The bins are gathered into one padded array of shape
    ``(n_bins, max_bin_pixels)`` so every bin is clipped at once.
    """
    height, width = image.shape
    padded = np.full((height + 1, width + 1), np.nan)
    padded[:height, :width] = np.where(good, image, np.nan)
    y_index = _bin_members(rows, height)
    x_index = _bin_members(cols, width)
    ny, sy = y_index.shape
    nx, sx = x_index.shape
    values = padded[y_index[:, :, None, None], x_index[None, None, :, :]]
    values = values.transpose(0, 2, 1, 3).reshape(ny * nx, sy * sx)
    return clipped_means_by_row(values).reshape(ny, nx)


def _bin_members(
    edges: npt.NDArray[np.intp], pad_index: int
) -> npt.NDArray[np.intp]:
    """Return each bin's pixel indices, padded with ``pad_index``."""
    sizes = np.diff(edges)
    offsets = np.arange(int(sizes.max()))
    members = edges[:-1, None] + offsets[None, :]
    return np.where(offsets[None, :] < sizes[:, None], members, pad_index)


def _interpolate(
    nodes: FloatArray, values: FloatArray, at: FloatArray
) -> FloatArray:
    """Interpolate along axis 0 of ``values`` as afw does (module notes).

    ``values`` is 1-D, or 2-D for several curves on the same nodes (one
    per column); the result has shape ``(len(at),)`` or
    ``(len(at), n_curves)``.
    """
    count = len(nodes)
    if count == 1:
        return np.broadcast_to(values[0], (len(at), *values.shape[1:])).copy()
    if count == 2:
        slope = (values[1] - values[0]) / (nodes[1] - nodes[0])
        return values[0] + np.multiply.outer(at - nodes[0], slope)
    spline: PPoly
    if count >= _MIN_AKIMA:
        spline = Akima1DInterpolator(nodes, values, axis=0)
    else:
        spline = CubicSpline(nodes, values, axis=0, bc_type="natural")
    inside = (at >= nodes[0]) & (at <= nodes[-1])
    out = np.empty((len(at), *values.shape[1:]))
    out[inside] = spline(at[inside])
    for end, beyond in (
        (nodes[0], at < nodes[0]),
        (nodes[-1], at > nodes[-1]),
    ):
        if np.any(beyond):
            step = np.asarray(at[beyond] - end)
            value, slope, curve = (spline(end, nu) for nu in (0, 1, 2))
            out[beyond] = (
                value
                + np.multiply.outer(step, slope)
                + 0.5 * np.multiply.outer(step**2, curve)
            )
    return out
