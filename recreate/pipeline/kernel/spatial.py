"""afw's 2-D polynomial terms: the kernel and background spatial models.

Spatial variation uses afw's ``Chebyshev1Function2`` on the science bbox
taken as a ``Box2D`` (pixel edges): ``x' = (x - x_mid) * 2 / width``, so
``x'`` is -1 and 1 on the outer edges of the first and last pixels.
Terms are ordered by total order, x power first: ``1, x, y, x^2, xy,
y^2, ...`` (``PolynomialFunction2`` uses the same order for monomials).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from recreate.numerics.row_blocks import run_row_blocks

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


def polynomial_factors(
    coefficients: npt.NDArray[np.float64],
    bbox: BBox,
    order: int,
    shape: tuple[int, int],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return a 2-D polynomial on a pixel grid as sums of outer products.

    Terms sharing a y power are summed along x first, so the image is
    ``sum_q outer(columns[q], rows[q])`` with ``order + 1`` products,
    never one 16 Mpx term image per coefficient.

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

    Returns
    -------
    columns, rows
        ``T_q(y')`` of every image row, shape ``(order + 1, height)``, and
        the x factor of each y power, shape ``(order + 1, width)``.
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
    rows = np.zeros((order + 1, width), dtype=np.float64)
    powers = monomial_powers(order)
    for value, (p, q) in zip(coefficients, powers, strict=True):
        rows[q] += value * x_cheb[p]
    return np.array(y_cheb), rows


def polynomial_image(
    coefficients: npt.NDArray[np.float64],
    bbox: BBox,
    order: int,
    shape: tuple[int, int],
) -> npt.NDArray[np.float64]:
    """Return ``sum_t c_t T_t(x', y')`` on a whole pixel grid.

    Parameters are those of `polynomial_factors`; the sum over y powers
    runs in their order, pixel by pixel.
    """
    columns, rows = polynomial_factors(coefficients, bbox, order, shape)
    out = np.zeros(shape, dtype=np.float64)
    for column, row in zip(columns, rows, strict=True):
        out += np.multiply.outer(column, row)
    return out


def subtract_polynomial_and_image(
    image: npt.NDArray[np.float32],
    coefficients: npt.NDArray[np.float64],
    bbox: BBox,
    order: int,
    other: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """Return ``image - polynomial - other`` in float64, rounded to float32.

    The same numbers as ``(image.astype(float64) - polynomial_image(...))
    - other`` cast to float32, bit for bit, in one pass over the pixels
    instead of five full-size float64 temporaries. Rows are independent,
    so the thread count changes nothing.

    Parameters
    ----------
    image, other
        float32 arrays of one shape.
    coefficients, bbox, order
        The polynomial, as for `polynomial_image`.

    Raises
    ------
    ValueError
        If the arrays differ in shape.
    """
    if image.shape != other.shape or image.ndim != 2:
        raise ValueError(
            f"image {image.shape} and other {other.shape} must be 2-D of "
            "one shape"
        )
    columns, rows = polynomial_factors(coefficients, bbox, order, image.shape)
    out = np.empty(image.shape, dtype=np.float32)

    def block(span: tuple[int, int]) -> None:
        _subtract_rows(image, other, columns, rows, span[0], span[1], out)

    run_row_blocks(block, image.shape[0])
    return out


@numba.njit(cache=True, nogil=True)
def _subtract_rows(
    image: npt.NDArray[np.float32],
    other: npt.NDArray[np.float32],
    columns: npt.NDArray[np.float64],
    rows: npt.NDArray[np.float64],
    top: int,
    bottom: int,
    out: npt.NDArray[np.float32],
) -> None:
    """Write rows ``top:bottom`` of `subtract_polynomial_and_image`."""
    n_powers, width = rows.shape
    for r in range(top, bottom):
        for c in range(width):
            model = 0.0
            for q in range(n_powers):
                model += columns[q, r] * rows[q, c]
            value = np.float64(image[r, c]) - model
            out[r, c] = np.float32(value - np.float64(other[r, c]))
