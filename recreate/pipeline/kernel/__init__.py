"""The Alard-Lupton PSF-matching kernel.

``basis``
    The Gaussian-times-polynomial basis; basis 0 carries the kernel sum
    (`check_basis` enforces it).
``stamps``, ``single``
    Candidate stamps and the per-candidate kernel fits.
``fit``, ``spatial_fit``, ``linalg``
    The spatially varying solution (Chebyshev order 1, background order
    2) with v29's clipping rules, and its linear algebra.
``spatial``
    Chebyshev spatial functions over the detector box.
``solved``, ``solve``
    The solved kernel (stored, reusable) and the stage entry point.
"""

from __future__ import annotations

from recreate.pipeline.kernel.basis import (
    KernelBasis,
    check_sum_carrier,
    make_basis,
)
from recreate.pipeline.kernel.solve import fit_kernel
from recreate.pipeline.kernel.solved import SolvedKernel

__all__ = [
    "KernelBasis",
    "SolvedKernel",
    "check_sum_carrier",
    "fit_kernel",
    "make_basis",
]
