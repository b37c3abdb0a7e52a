"""afw's 2-D polynomial terms: the kernel and background spatial models.

Spatial variation uses afw's ``Chebyshev1Function2`` on the science bbox
taken as a ``Box2D`` (pixel edges): ``x' = (x - x_mid) * 2 / width``, so
``x'`` is -1 and 1 on the outer edges of the first and last pixels.
Terms are ordered by total order, x power first: ``1, x, y, x^2, xy,
y^2, ...`` (``PolynomialFunction2`` uses the same order for monomials).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: ``(x0, y0, width, height)`` of an integer pixel box.
BBox = tuple[int, int, int, int]


def monomial_powers(degree: int) -> list[tuple[int, int]]:
    """Return the ``(x power, y power)`` of afw's 2-D polynomial terms."""
    return [
        (order - i, i) for order in range(degree + 1) for i in range(order + 1)
    ]


def n_terms(degree: int) -> int:
    """Return the number of 2-D polynomial terms up to ``degree``."""
    return (degree + 1) * (degree + 2) // 2


def spatial_terms(
    x: npt.ArrayLike, y: npt.ArrayLike, bbox: BBox, order: int
) -> npt.NDArray[np.float64]:
    """Return the Chebyshev terms ``T_a(x') T_b(y')`` at positions.

    Parameters
    ----------
    x, y
        Positions in the bbox's pixel frame (broadcast together).
    bbox
        ``(x0, y0, width, height)`` over which ``x', y'`` span [-1, 1].
    order
        Total order of the Chebyshev polynomial.

    Returns
    -------
    terms
        Array of shape ``(n_terms(order), *broadcast shape)``.
    """
    x_cheb = chebyshev_series(
        normalise_positions(np.asarray(x, np.float64), bbox[0], bbox[2]), order
    )
    y_cheb = chebyshev_series(
        normalise_positions(np.asarray(y, np.float64), bbox[1], bbox[3]), order
    )
    return np.array([x_cheb[p] * y_cheb[q] for p, q in monomial_powers(order)])


def grid_terms(
    bbox: BBox, order: int, rows: range, cols: range
) -> npt.NDArray[np.float64]:
    """Return the terms on a pixel grid, ``(n_terms, len(rows), len(cols))``.

    Pixel ``[i, j]`` of the grid is at ``x = cols[i], y = rows[j]`` in the
    bbox's frame; the terms are products of 1-D series (cheap).
    """
    x_cheb = chebyshev_series(
        normalise_positions(np.array(cols, np.float64), bbox[0], bbox[2]),
        order,
    )
    y_cheb = chebyshev_series(
        normalise_positions(np.array(rows, np.float64), bbox[1], bbox[3]),
        order,
    )
    return np.array(
        [np.outer(y_cheb[q], x_cheb[p]) for p, q in monomial_powers(order)]
    )


def normalise_positions(
    values: npt.NDArray[np.float64], start: int, length: int
) -> npt.NDArray[np.float64]:
    """Map positions onto [-1, 1] across a ``Box2D``'s pixel edges.

    afw's ``Chebyshev1Function2`` computes ``(x + offset) * scale`` with
    ``offset = -(min + max) / 2`` and ``scale = 2 / (max - min)``.
    """
    low = start - 0.5
    high = start + length - 0.5
    return (values + (-0.5 * (low + high))) * (2.0 / (high - low))


def chebyshev_series(
    values: npt.NDArray[np.float64], order: int
) -> list[npt.NDArray[np.float64]]:
    """Return ``[T_0, ..., T_order]`` of the first kind at ``values``."""
    series = [np.ones_like(values)]
    if order >= 1:
        series.append(values.copy())
    for n in range(2, order + 1):
        series.append(2.0 * values * series[n - 1] - series[n - 2])
    return series


def polynomial_image(
    coefficients: npt.NDArray[np.float64],
    bbox: BBox,
    order: int,
    shape: tuple[int, int],
) -> npt.NDArray[np.float64]:
    """Return ``sum_t c_t T_t(x', y')`` on a whole pixel grid.

    Terms sharing a y power are summed along x first, so the grid is
    touched once per y power (3 passes at order 2), never once per term:
    a full detector costs a few outer products, not a stack of 16 Mpx
    term images.

    Parameters
    ----------
    coefficients
        One coefficient per term, in `monomial_powers` order.
    bbox
        ``(x0, y0, width, height)`` over which ``x', y'`` span [-1, 1].
    order
        Total order of the polynomial.
    shape
        ``(height, width)``; pixel ``[row, col]`` is at ``x = col, y = row``.
    """
    height, width = shape
    x_cheb = chebyshev_series(
        normalise_positions(
            np.arange(width, dtype=np.float64), bbox[0], bbox[2]
        ),
        order,
    )
    y_cheb = chebyshev_series(
        normalise_positions(
            np.arange(height, dtype=np.float64), bbox[1], bbox[3]
        ),
        order,
    )
    out = np.zeros(shape, dtype=np.float64)
    powers = monomial_powers(order)
    for q in range(order + 1):
        row = np.zeros(width, dtype=np.float64)
        for value, (p, q_term) in zip(coefficients, powers, strict=True):
            if q_term == q:
                row += value * x_cheb[p]
        out += np.multiply.outer(y_cheb[q], row)
    return out
