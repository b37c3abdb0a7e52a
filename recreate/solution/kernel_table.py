"""The matching kernel as a FITS table (a solution file's KERNEL HDU).

One row per basis image of DP2's ``MatchingKernel`` (a
LinearCombinationKernel of ip_diffim's Alard-Lupton basis): its
Gaussian, that Gaussian's sigma, its monomial's x and y powers, and the
Chebyshev coefficients of its weight over the science bbox. The header
holds the box size, the degrees, the bbox, the orders and the candidate
counts; the floats that are not per basis image (the sigmas exactly,
the condition number, the background's coefficients) are PARAMS rows
(`kernel_numbers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits

from recreate.pipeline.kernel.basis import KernelBasis
from recreate.pipeline.kernel.solved import SolvedKernel
from recreate.pipeline.kernel.spatial import monomial_powers

_BBOX_CARDS = ("BBOXX0", "BBOXY0", "BBOXNX", "BBOXNY")


def kernel_numbers(kernel: SolvedKernel) -> dict[str, float]:
    """Return the kernel's floats that the KERNEL table does not hold."""
    numbers = {
        f"kernel_sigma_{i}": s for i, s in enumerate(kernel.basis.sigmas)
    }
    numbers["kernel_condition_number"] = kernel.condition_number
    for i, value in enumerate(kernel.background.tolist()):
        numbers[f"kernel_background_{i}"] = value
    return numbers


def kernel_table_hdu(kernel: SolvedKernel) -> fits.BinTableHDU:
    """Return the matching kernel as its basis and coefficients."""
    basis = kernel.basis
    rows = [
        (g, basis.sigmas[g], p, q)
        for g, degree in enumerate(basis.degrees)
        for p, q in monomial_powers(degree)
    ]
    n_terms = kernel.coefficients.shape[1]
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column(
                name="GAUSSIAN", format="J", array=[r[0] for r in rows]
            ),
            fits.Column(name="SIGMA", format="D", array=[r[1] for r in rows]),
            fits.Column(name="XPOWER", format="J", array=[r[2] for r in rows]),
            fits.Column(name="YPOWER", format="J", array=[r[3] for r in rows]),
            fits.Column(
                name="COEFF", format=f"{n_terms}D", array=kernel.coefficients
            ),
        ],
        name="KERNEL",
    )
    header = hdu.header
    header["KSIZE"] = (basis.size, "kernel box side (px)")
    header["NGAUSS"] = (len(basis.degrees), "Gaussians of the basis")
    for index, degree in enumerate(basis.degrees):
        header[f"DEGREE{index}"] = (degree, "monomial degree of Gaussian")
    for name, value in zip(_BBOX_CARDS, kernel.bbox, strict=True):
        header[name] = (value, "Chebyshev bounds (science px)")
    header["SPORDER"] = (kernel.spatial_kernel_order, "kernel Chebyshev order")
    header["BGORDER"] = (kernel.spatial_bg_order, "background order")
    header["NCAND"] = (kernel.n_candidates, "kernel candidates offered")
    header["NUSED"] = (kernel.n_used, "candidates in the spatial fit")
    return hdu


def kernel_from_table(
    header: fits.Header, table: Mapping[str, Any], numbers: dict[str, float]
) -> SolvedKernel:
    """Rebuild the matching kernel from its table and PARAMS rows.

    ``table`` holds the table's columns by name.
    """
    coefficients = np.asarray(table["COEFF"], np.float64)
    n_gauss = int(header["NGAUSS"])
    background = [
        numbers[f"kernel_background_{i}"]
        for i in range(len(numbers))
        if f"kernel_background_{i}" in numbers
    ]
    return SolvedKernel(
        basis=KernelBasis(
            size=int(header["KSIZE"]),
            sigmas=tuple(numbers[f"kernel_sigma_{i}"] for i in range(n_gauss)),
            degrees=tuple(int(header[f"DEGREE{i}"]) for i in range(n_gauss)),
        ),
        coefficients=coefficients.reshape(len(coefficients), -1),
        background=np.array(background, np.float64),
        bbox=tuple(int(header[k]) for k in _BBOX_CARDS),  # type: ignore[arg-type]
        spatial_kernel_order=int(header["SPORDER"]),
        spatial_bg_order=int(header["BGORDER"]),
        n_candidates=int(header["NCAND"]),
        n_used=int(header["NUSED"]),
        condition_number=numbers["kernel_condition_number"],
    )
