"""Apply the spatially varying matching kernel to the template (afw).

This is the whole-image form of the convolution, afw's definition that
the tests and the kernel checks compare with; a render applies the same
sums tile by tile (`recreate.solution.tiles`, image only).

afw's ``convolve(MaskedImage, LinearCombinationKernel)`` computes, at
every output pixel ``x``, the local kernel ``K_x(u) = sum_j P_j(x) K_j(u)``
and then (``convolveAtAPoint``)::

    image(x)    = sum_u K_x(u)   T(x + u)
    variance(x) = sum_u K_x(u)^2 V(x + u)
    mask(x)     = OR of M(x + u) over every u with K_x(u) != 0

with ``u`` the offset from the kernel centre: a correlation with the
kernel image, not flipped. Because ``P_j`` does not depend on ``u``::

    image    = sum_j P_j (T * K_j)               (3 terms for order 1)
    variance = sum_{j<=k} c_jk P_j P_k (V * K_j K_k)   (6 terms, c = 1 or 2)

where ``*`` is that correlation, done here by FFT over ~0.5k tiles (the
same numbers to ~1e-13 relative, far below float32), the tiles spread
over ``workers`` threads; each tile is computed alone and in a fixed
order, so the result does not depend on the thread count. Each weight
``P_j`` (and ``c_jk P_j P_k``) is a product of a row and a column factor;
the inverse FFT runs along y for every term, then, after the row factors
(which commute with it), along x once per distinct column factor. AL
kernels are non-zero over the whole box, so every mask bit is dilated by
the full box (`recreate.pipeline.match.mask_growth`).

The input is the template on the science grid grown by ``border``; the
output is on the science grid (afw convolves the grown image, then
crops). Non-finite input pixels are set to 0 before the FFT, so they
cannot spread beyond the kernel box; the output pixels whose box holds
one are set as afw leaves them (image NaN, variance NaN or +inf).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.pipeline.kernel.solved import SolvedKernel
from recreate.pipeline.kernel.spatial import (
    chebyshev_series,
    monomial_powers,
    normalise_positions,
)
from recreate.pipeline.match.mask_growth import grow_mask
from recreate.pipeline.match.tiled_correlation import (
    SeparableWeights,
    correlate_tiles,
)


def convolve_template(
    image: npt.NDArray[np.floating[Any]],
    variance: npt.NDArray[np.floating[Any]],
    mask: npt.NDArray[np.integer[Any]],
    planes: MaskPlanes,
    kernel: SolvedKernel,
    *,
    border: int,
    grow_planes: Iterable[str] | None = None,
    workers: int = 1,
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int32]
]:
    """Convolve the grown template with the kernel; crop to the science grid.

    Parameters
    ----------
    image, variance, mask
        Template planes on the science grid grown by ``border`` px.
    planes
        Names of the mask bits.
    kernel
        The solved kernel; its bbox is in science array pixels.
    border
        Template border; must be at least the kernel half-width.
    grow_planes
        Mask planes to carry (dilated by the kernel box). None carries
        every bit, as afw does; after v29's ``updateMasks`` only NO_DATA,
        BAD and the ``*_TEMPLATE`` planes are left anyway.
    workers
        Threads; the result does not depend on it.

    Returns
    -------
    image, variance, mask
        float32, float32 and int32 planes on the science grid.

    Raises
    ------
    ProcessingError
        If the border is narrower than the kernel half-width or the planes
        disagree in shape.
    """
    half = kernel.basis.half_width
    shape = np.shape(image)
    if (
        np.shape(variance) != shape
        or np.shape(mask) != shape
        or len(shape) != 2
    ):
        raise ProcessingError(
            "template image, variance and mask shapes differ"
        )
    if border < half:
        raise ProcessingError(
            f"template border {border} px is narrower than the kernel "
            f"half-width {half} px"
        )
    height, width = shape[0] - 2 * border, shape[1] - 2 * border
    region = (
        slice(border - half, border + height + half),
        slice(border - half, border + width + half),
    )
    spatial = kernel.spatial_kernels()
    weights = spatial_weights(kernel, height, width)
    out_image = _finite_correlation(
        np.asarray(image)[region], spatial, weights, workers
    )
    products, product_weights = squared_kernel_terms(spatial, weights)
    out_variance = _finite_correlation(
        np.asarray(variance)[region], products, product_weights, workers
    )
    bits = _carried_bits(planes, grow_planes)
    out_mask = grow_mask(np.asarray(mask)[region], half, bits)
    return out_image, out_variance, out_mask


def spatial_weights(
    kernel: SolvedKernel, height: int, width: int
) -> SeparableWeights:
    """Return the Chebyshev terms ``P_j`` on the science grid, separated.

    ``P_j = T_p(x') T_q(y')``: the row factor is ``T_q(y')`` and the
    column factor ``T_p(x')``, with ``x = column, y = row``.
    """
    x0, y0, bbox_width, bbox_height = kernel.bbox
    order = kernel.spatial_kernel_order
    x_series = chebyshev_series(
        normalise_positions(
            np.arange(width, dtype=np.float64), x0, bbox_width
        ),
        order,
    )
    y_series = chebyshev_series(
        normalise_positions(
            np.arange(height, dtype=np.float64), y0, bbox_height
        ),
        order,
    )
    powers = monomial_powers(order)
    return SeparableWeights(
        rows=np.array([y_series[q] for _, q in powers]),
        cols=np.array([x_series[p] for p, _ in powers]),
    )


def squared_kernel_terms(
    kernels: npt.NDArray[np.float64], weights: SeparableWeights
) -> tuple[npt.NDArray[np.float64], SeparableWeights]:
    """Return ``K_j K_k`` (j <= k) and their weights ``c_jk P_j P_k``.

    ``c_jk`` is 1 on the diagonal and 2 off it, so that the sum over
    ``j <= k`` equals ``(sum_j P_j K_j)^2``.
    """
    pairs = [
        (j, k) for j in range(len(kernels)) for k in range(j, len(kernels))
    ]
    products = np.array([kernels[j] * kernels[k] for j, k in pairs])
    rows = np.array(
        [
            (1.0 if j == k else 2.0) * (weights.rows[j] * weights.rows[k])
            for j, k in pairs
        ]
    )
    cols = np.array([weights.cols[j] * weights.cols[k] for j, k in pairs])
    return products, SeparableWeights(rows=rows, cols=cols)


def _finite_correlation(
    data: npt.NDArray[np.floating[Any]],
    kernels: npt.NDArray[np.float64],
    weights: SeparableWeights,
    workers: int,
) -> npt.NDArray[np.float32]:
    """Correlate, keeping non-finite inputs inside their kernel box.

    A NaN (or -inf) input makes the outputs around it NaN, a +inf makes
    them +inf (NaN winning), as afw's real-space sums do; everywhere else
    the input is as if those pixels were 0.
    """
    half = kernels.shape[-1] // 2
    finite = np.isfinite(data)
    if finite.all():
        return correlate_tiles(data, kernels, weights, workers)
    out = correlate_tiles(np.where(finite, data, 0), kernels, weights, workers)
    positive_inf = np.isposinf(data)
    out[grow_mask(positive_inf, half, 1) != 0] = np.inf
    out[grow_mask(~finite & ~positive_inf, half, 1) != 0] = np.nan
    return out


def _carried_bits(
    planes: MaskPlanes, grow_planes: Iterable[str] | None
) -> int:
    """Return the mask bits to carry: all, or those of ``grow_planes``."""
    if grow_planes is None:
        return 0xFFFFFFFF
    return planes.value_of_present(grow_planes)
