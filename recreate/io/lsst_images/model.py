"""The neutral inputs: template provenance and the matching kernel.

`TemplateProvenance` and `KernelModel` describe, without ``lsst.images``
types, what `recreate.io.lsst_images.write` turns into the
`~lsst.images.DifferenceImage` templates and kernel; the Chebyshev
helpers fix the polynomial order both sides use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.errors import FormatError
from recreate.io.lsst_images.detector import COMCAM


@dataclass(frozen=True, eq=False)
class TemplateProvenance:
    """One template coadd patch that went into a difference image.

    Parameters
    ----------
    skymap, tract, patch
        The patch's skymap name and tract and patch numbers.
    dataset_id
        Butler dataset UUID of the template coadd, as a string.
    dataset_run
        Butler RUN collection of the template coadd.
    bounds_xy
        ``(n, 2)`` polygon vertices ``(x, y)`` in science *array* pixels:
        the patch's outer box mapped onto the science grid. It is clipped
        to the image on writing, as Rubin records the overlap only.
    psf_shape_xx, psf_shape_yy, psf_shape_xy
        Second moments of the template PSF, pixels^2 (a Gaussian of
        width sigma gives ``sigma**2, sigma**2, 0``); NaN where unknown.
    instrument
        Instrument whose visits were coadded.
    """

    skymap: str
    tract: int
    patch: int
    dataset_id: str
    dataset_run: str
    bounds_xy: npt.NDArray[np.float64]
    psf_shape_xx: float
    psf_shape_yy: float
    psf_shape_xy: float
    instrument: str = COMCAM

    def __post_init__(self) -> None:
        """Coerce the vertices to floats and check the id and polygon.

        Raises
        ------
        FormatError
            If the dataset id is not a UUID or the vertices are not an
            ``(n >= 3, 2)`` array of finite numbers.
        """
        try:
            uuid.UUID(self.dataset_id)
        except (ValueError, TypeError, AttributeError) as exc:
            raise FormatError(
                f"template dataset_id {self.dataset_id!r} is not a UUID"
            ) from exc
        bounds = np.array(self.bounds_xy, dtype=np.float64)
        if bounds.ndim != 2 or bounds.shape[1] != 2 or len(bounds) < 3:
            raise FormatError(
                f"template bounds_xy has shape {bounds.shape}; "
                "expected (n >= 3, 2)"
            )
        if not np.all(np.isfinite(bounds)):
            raise FormatError("template bounds_xy has non-finite vertices")
        bounds.flags.writeable = False
        object.__setattr__(self, "bounds_xy", bounds)


@dataclass(frozen=True, eq=False)
class KernelModel:
    """A spatially varying matching kernel: basis images, Chebyshev weights.

    The kernel at array position ``(x, y)`` is
    ``sum_i sum_t coefficients[i, t] * T_t(x~, y~) * basis[i]``. The
    terms ``T_t`` are products ``T_q(x~) T_p(y~)`` of Chebyshev
    polynomials of the first kind, ``q + p <= order``, in afw's
    ``Chebyshev1Function2D`` order: by total degree, then by rising
    power of y; for order 1 that is ``(1, x~, y~)`` and for order 2
    ``(1, x~, y~, x~^2, x~ y~, y~^2)``. The reduced coordinates map the
    *outer pixel edges* of ``bbox`` to -1 and 1, as afw (and
    `lsst.images.fields.ChebyshevField`) do:
    ``x~ = (2 (x - x0) + 1) / width - 1``, likewise for y.

    Parameters
    ----------
    basis
        ``(n_basis, h, w)`` basis images, odd sides, centred on their
        middle pixel.
    coefficients
        ``(n_basis, n_terms)`` Chebyshev coefficients,
        ``n_terms = (order + 1)(order + 2) / 2``.
    bbox
        ``(x0, y0, width, height)`` of the fit domain, array pixels.
    order
        Spatial order of the Chebyshev polynomials.
    """

    basis: npt.NDArray[np.float64]
    coefficients: npt.NDArray[np.float64]
    bbox: tuple[int, int, int, int]
    order: int

    def __post_init__(self) -> None:
        """Coerce the arrays to float64 and check their shapes.

        Raises
        ------
        FormatError
            If the shapes do not agree with each other and ``order``, a
            basis side is even, the box is empty or a value is not finite.
        """
        basis = np.array(self.basis, dtype=np.float64)
        coefficients = np.array(self.coefficients, dtype=np.float64)
        if self.order < 0:
            raise FormatError(f"kernel order {self.order} is negative")
        if (
            basis.ndim != 3
            or basis.shape[1] % 2 == 0
            or basis.shape[2] % 2 == 0
        ):
            raise FormatError(
                f"kernel basis has shape {basis.shape}; expected "
                "(n_basis, h, w) with odd h and w"
            )
        expected = (basis.shape[0], len(chebyshev_terms(self.order)))
        if coefficients.shape != expected:
            raise FormatError(
                f"kernel coefficients have shape {coefficients.shape}; "
                f"expected {expected} for order {self.order}"
            )
        if not (
            np.all(np.isfinite(basis)) and np.all(np.isfinite(coefficients))
        ):
            raise FormatError("kernel basis or coefficients are not finite")
        x0, y0, width, height = (int(value) for value in self.bbox)
        if width <= 0 or height <= 0:
            raise FormatError(f"kernel bbox {self.bbox} is empty")
        for array in (basis, coefficients):
            array.flags.writeable = False
        object.__setattr__(self, "basis", basis)
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "bbox", (x0, y0, width, height))

    def reduced(self, x: float, y: float) -> tuple[float, float]:
        """Return ``(x~, y~)``: the position mapped onto [-1, 1]^2."""
        x0, y0, width, height = self.bbox
        return (
            (2.0 * (x - x0) + 1.0) / width - 1.0,
            (2.0 * (y - y0) + 1.0) / height - 1.0,
        )

    def weights(self, x: float, y: float) -> npt.NDArray[np.float64]:
        """Return the weight of each basis image at array ``(x, y)``."""
        rx, ry = self.reduced(x, y)
        tx = chebyshev_values(rx, self.order)
        ty = chebyshev_values(ry, self.order)
        terms = np.array(
            [tx[q] * ty[p] for p, q in chebyshev_terms(self.order)]
        )
        return self.coefficients @ terms

    def kernel_image(self, x: float, y: float) -> npt.NDArray[np.float64]:
        """Return the ``(h, w)`` kernel image at array position ``(x, y)``.

        This is the reference the written kernel is checked against.
        """
        return np.tensordot(self.weights(x, y), self.basis, axes=1)


def chebyshev_terms(order: int) -> list[tuple[int, int]]:
    """Return the ``(p, q)`` powers of ``T_p(y) T_q(x)``, afw's order.

    Terms go by total degree ``n = p + q``, then by rising ``p``; this is
    the parameter order of afw's ``Chebyshev1Function2D``.
    """
    return [(p, n - p) for n in range(order + 1) for p in range(n + 1)]


def chebyshev_values(value: float, order: int) -> list[float]:
    """Return ``[T_0(value), ..., T_order(value)]`` (first kind)."""
    values = [1.0, value]
    while len(values) <= order:
        values.append(2.0 * value * values[-1] - values[-2])
    return values[: order + 1]
