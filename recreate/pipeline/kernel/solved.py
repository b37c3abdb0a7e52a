"""The solved kernel: spatial coefficients, background, and their uses.

`SolvedKernel` holds what v29's ``MakeKernelTask`` returns - the spatially
varying ``LinearCombinationKernel`` and the background ``Function2`` - as
coefficients on an Alard-Lupton basis and Chebyshev terms over the
science bbox. It is small and JSON-able (floats as hex, so it round-trips
to the bit), and gives the kernel image anywhere, its spatial components
``K_j`` (``K(x, y) = sum_j P_j(x, y) K_j``) and the background image.
Kernel images follow afw's convention: ``out(x) = sum_u K(u) T(x + u)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recreate.errors import FormatError
from recreate.pipeline.kernel.basis import KernelBasis
from recreate.pipeline.kernel.single import kernel_sum
from recreate.pipeline.kernel.spatial import (
    BBox,
    n_terms,
    polynomial_image,
    spatial_terms,
)

#: Version of the `SolvedKernel.to_dict` layout.
KERNEL_DICT_VERSION = 1


@dataclass(frozen=True, eq=False)
class SolvedKernel:
    """A solved spatially varying kernel and differential background.

    Parameters
    ----------
    basis
        The basis the coefficients refer to.
    coefficients
        ``(n_basis, n_spatial_terms)`` Chebyshev coefficients of each basis
        weight; basis 0 has only the constant term, so the kernel sum is
        the same everywhere.
    background
        Chebyshev coefficients of the background (empty if not fitted).
    bbox
        ``(x0, y0, width, height)`` in science array pixels over which the
        Chebyshev polynomials are normalised.
    spatial_kernel_order, spatial_bg_order
        Chebyshev orders of the kernel and background.
    n_candidates
        Usable candidates offered to the fit.
    n_used
        Candidates in the final spatial solve.
    condition_number
        Eigenvalue condition number of the final spatial system.
    """

    basis: KernelBasis
    coefficients: npt.NDArray[np.float64]
    background: npt.NDArray[np.float64]
    bbox: BBox
    spatial_kernel_order: int
    spatial_bg_order: int
    n_candidates: int
    n_used: int
    condition_number: float = math.nan

    def __post_init__(self) -> None:
        """Freeze the arrays and check their shapes.

        Raises
        ------
        FormatError
            If an array's shape does not match the basis and orders.
        """
        coefficients = np.array(self.coefficients, dtype=np.float64)
        background = np.array(self.background, dtype=np.float64).reshape(-1)
        expected = (self.basis.n_basis, n_terms(self.spatial_kernel_order))
        if coefficients.shape != expected:
            raise FormatError(
                f"kernel coefficients have shape {coefficients.shape}, "
                f"expected {expected}"
            )
        if background.size not in (0, n_terms(self.spatial_bg_order)):
            raise FormatError(
                f"{background.size} background coefficients for order "
                f"{self.spatial_bg_order}"
            )
        coefficients.setflags(write=False)
        background.setflags(write=False)
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "background", background)
        object.__setattr__(self, "bbox", tuple(int(v) for v in self.bbox))

    def weights_at(self, x: float, y: float) -> npt.NDArray[np.float64]:
        """Return the weight of each basis image at a science pixel."""
        terms = spatial_terms(x, y, self.bbox, self.spatial_kernel_order)
        return self.coefficients @ terms

    def kernel_image(self, x: float, y: float) -> npt.NDArray[np.float64]:
        """Return the kernel image at science array pixel ``(x, y)``.

        Axes are ``(v, u)``; pixel ``[h + v, h + u]`` (``h`` the half
        width) is ``K(u, v)`` in ``out(x) = sum_u K(u) T(x + u)``.
        """
        return np.einsum(
            "i,ivu->vu", self.weights_at(x, y), self.basis.images()
        )

    def kernel_sum(self) -> float:
        """Return the kernel sum (the same everywhere), at the bbox centre."""
        x0, y0, width, height = self.bbox
        centre = self.weights_at(x0 + width / 2.0, y0 + height / 2.0)
        return kernel_sum(centre, self.basis)

    def spatial_kernels(self) -> npt.NDArray[np.float64]:
        """Return ``K_j = sum_i a_ij B_i``, ``(n_spatial, size, size)``."""
        return np.einsum("ij,ivu->jvu", self.coefficients, self.basis.images())

    def background_image(
        self, shape: tuple[int, int], dtype: npt.DTypeLike = np.float32
    ) -> npt.NDArray[Any]:
        """Return the background model on an array in the bbox's frame.

        Parameters
        ----------
        shape
            ``(height, width)`` of the array; pixel ``[row, col]`` is at
            ``x = col, y = row``.
        dtype
            Output type. afw subtracts the double-precision model from the
            float image; ask for float64 to reproduce that rounding.
        """
        if self.background.size == 0:
            return np.zeros(shape, dtype=dtype)
        return polynomial_image(
            self.background, self.bbox, self.spatial_bg_order, shape
        ).astype(dtype)

    def to_dict(self) -> dict[str, Any]:
        """Return a small JSON-able form; floats are hex, so it is exact."""
        return {
            "version": KERNEL_DICT_VERSION,
            "basis": self.basis.to_dict(),
            "coefficients": [
                [v.hex() for v in row] for row in self.coefficients.tolist()
            ],
            "background": [v.hex() for v in self.background.tolist()],
            "bbox": list(self.bbox),
            "spatial_kernel_order": self.spatial_kernel_order,
            "spatial_bg_order": self.spatial_bg_order,
            "n_candidates": self.n_candidates,
            "n_used": self.n_used,
            "condition_number": float(self.condition_number).hex(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SolvedKernel:
        """Rebuild a kernel from `to_dict` output.

        Raises
        ------
        FormatError
            If the version is unknown or a field is missing or malformed.
        """
        if data.get("version") != KERNEL_DICT_VERSION:
            raise FormatError(
                f"unknown kernel layout version {data.get('version')!r}"
            )
        try:
            return cls(
                basis=KernelBasis.from_dict(data["basis"]),
                coefficients=np.array(
                    [
                        [float.fromhex(v) for v in row]
                        for row in data["coefficients"]
                    ]
                ),
                background=np.array(
                    [float.fromhex(v) for v in data["background"]]
                ),
                bbox=tuple(int(v) for v in data["bbox"]),  # type: ignore[arg-type]
                spatial_kernel_order=int(data["spatial_kernel_order"]),
                spatial_bg_order=int(data["spatial_bg_order"]),
                n_candidates=int(data["n_candidates"]),
                n_used=int(data["n_used"]),
                condition_number=float.fromhex(data["condition_number"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise FormatError(f"bad kernel description: {error}") from None
