"""Spatial cells and the spatial system of the kernel fit (ip_diffim).

Candidates sit in afw ``SpatialCell``s of ``sizeCellX x sizeCellY`` (128
px) tiling the science bbox row by row, the last row and column taking
what is left; each cell ranks its candidates by rating, highest first,
and a visit sees the first ``nStarPerCell`` that are not BAD.

The spatial system is ``SpatialKernelSolution``.

Unknowns: the constant of basis 0 (which carries the kernel sum and does
not vary), then ``n_spatial`` Chebyshev coefficients for each other basis,
then the background's. A candidate's single-kernel normal equations
``(M, b)`` enter through the spatial terms at its centre (assumed constant
over the stamp): block ``(m1, m2)`` gains ``M[m1, m2] * pK pK^T``, taken
from M's upper triangle and mirrored, as ``addConstraint`` fills it; the
background blocks likewise with ``pB``. The system is solved as
``KernelSolution::solve`` (complete-pivoting LU, else a pseudo-inverse);
a condition number above ``maxSpatialConditionNumber`` only draws a
warning, as in v29's ``_diagnostic``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.errors import ProcessingError
from recreate.pipeline.config import KernelConfig
from recreate.pipeline.kernel.basis import KernelBasis
from recreate.pipeline.kernel.linalg import condition_number, solve_like_eigen
from recreate.pipeline.kernel.spatial import BBox, n_terms, spatial_terms
from recreate.pipeline.kernel.stamps import KernelCandidate, Status

_LOG = logging.getLogger(__name__)


class CandidateCells:
    """Candidates in afw ``SpatialCell``s over a bbox, ranked per cell.

    Parameters
    ----------
    candidates
        Candidates in the caller's order (which breaks rating ties: afw
        inserts a later candidate before an equal-rated earlier one).
    bbox
        ``(x0, y0, width, height)`` of the cell set.
    cell_size
        Side of a cell in pixels; the last row and column take the rest.
    """

    def __init__(
        self,
        candidates: Sequence[KernelCandidate],
        bbox: BBox,
        cell_size: int,
    ) -> None:
        """Assign every candidate to its cell and rank each cell."""
        x0, y0, width, height = bbox
        n_x = -(-width // cell_size)
        n_y = -(-height // cell_size)
        cells: list[list[KernelCandidate]] = [[] for _ in range(n_x * n_y)]
        for candidate in candidates:
            column = (int(np.floor(candidate.x + 0.5)) - x0) // cell_size
            row = (int(np.floor(candidate.y + 0.5)) - y0) // cell_size
            if not (0 <= column < n_x and 0 <= row < n_y):
                raise ProcessingError(
                    f"kernel candidate at ({candidate.x}, {candidate.y}) "
                    "lies outside the science image"
                )
            cells[row * n_x + column].append(candidate)
        self._cells = [
            sorted(cell, key=lambda c: (-c.rating, -c.index)) for cell in cells
        ]

    def visit(self, n_per_cell: int) -> Iterator[KernelCandidate]:
        """Yield the first ``n_per_cell`` non-BAD candidates of each cell.

        Status is checked as each candidate comes up, as afw's iterator
        does, so a candidate marked BAD while visited still counts.
        """
        for cell in self._cells:
            visited = 0
            for candidate in cell:
                if visited == n_per_cell:
                    break
                if candidate.status is Status.BAD:
                    continue
                yield candidate
                visited += 1


@dataclass(frozen=True)
class SpatialSolution:
    """Spatial coefficients of the kernel and background.

    Attributes
    ----------
    coefficients
        ``(n_basis, n_spatial_terms)``; basis 0 has only its constant term.
    background
        Chebyshev coefficients of the differential background.
    n_used
        Candidates that went into the final spatial system.
    condition_number
        Eigenvalue condition number of the final spatial system.
    """

    coefficients: npt.NDArray[np.float64]
    background: npt.NDArray[np.float64]
    n_used: int
    condition_number: float


class SpatialSystem:
    """The normal equations of the spatial fit, filled as ip_diffim does.

    Unknowns: the constant of basis 0, then ``n_spatial`` Chebyshev
    coefficients for each other basis, then the background's. A
    candidate's ``(M, b)`` enter through the terms at its centre: block
    ``(m1, m2)`` gains ``M[m1, m2] * pK pK^T`` (from M's upper triangle,
    mirrored), and so on for the background blocks.
    """

    def __init__(
        self,
        basis: KernelBasis,
        config: KernelConfig,
        bbox: BBox,
    ) -> None:
        """Allocate an empty system."""
        self.n_basis = basis.n_basis
        self.kernel_order = config.spatial_kernel_order
        self.bg_order = config.spatial_bg_order
        self.fit_background = config.fit_for_background
        self.n_kernel_terms = n_terms(self.kernel_order)
        self.n_bg_terms = n_terms(self.bg_order) if self.fit_background else 0
        self.size = (
            (self.n_basis - 1) * self.n_kernel_terms + 1 + self.n_bg_terms
        )
        self.bbox = bbox
        self.matrix = np.zeros((self.size, self.size))
        self.vector = np.zeros(self.size)
        self.n_used = 0
        self.max_condition = config.max_spatial_condition_number

    def add(self, candidate: KernelCandidate) -> None:
        """Add one candidate's normal equations at its centre."""
        solution = candidate.single
        if solution is None:
            raise ProcessingError(
                f"kernel candidate {candidate.index} was never fitted"
            )
        upper = np.triu(solution.normal_matrix)
        q = upper + np.triu(upper, 1).T
        w = solution.normal_vector
        p_k = spatial_terms(
            candidate.x, candidate.y, self.bbox, self.kernel_order
        )
        nb = self.n_basis
        kernel = slice(1, self.size - self.n_bg_terms)
        self.matrix[0, 0] += q[0, 0]
        row0 = _kron(q[0, 1:nb], p_k)
        self.matrix[0, kernel] += row0
        self.matrix[kernel, 0] += row0
        self.matrix[kernel, kernel] += _kron(q[1:nb, 1:nb], np.outer(p_k, p_k))
        self.vector[0] += w[0]
        self.vector[kernel] += _kron(w[1:nb], p_k)
        if self.fit_background:
            self._add_background(q, w, p_k, candidate)
        self.n_used += 1

    def _add_background(
        self,
        q: npt.NDArray[np.float64],
        w: npt.NDArray[np.float64],
        p_k: npt.NDArray[np.float64],
        candidate: KernelCandidate,
    ) -> None:
        """Add the background rows and columns of one candidate."""
        nb = self.n_basis
        p_b = spatial_terms(candidate.x, candidate.y, self.bbox, self.bg_order)
        kernel = slice(1, self.size - self.n_bg_terms)
        bg = slice(self.size - self.n_bg_terms, self.size)
        row0 = q[0, nb] * p_b
        self.matrix[0, bg] += row0
        self.matrix[bg, 0] += row0
        cross = _kron(q[1:nb, nb : nb + 1], np.outer(p_k, p_b))
        self.matrix[kernel, bg] += cross
        self.matrix[bg, kernel] += cross.T
        self.matrix[bg, bg] += q[nb, nb] * np.outer(p_b, p_b)
        self.vector[bg] += w[nb] * p_b

    def solve(self) -> SpatialSolution:
        """Solve the system and unpack the coefficients.

        Raises
        ------
        ProcessingError
            If the solution is not finite.
        """
        solution = solve_like_eigen(self.matrix, self.vector)
        if not np.all(np.isfinite(solution)):
            raise ProcessingError(
                "unable to determine the spatial kernel (NaN)"
            )
        coefficients = np.zeros((self.n_basis, self.n_kernel_terms))
        coefficients[0, 0] = solution[0]
        coefficients[1:] = solution[1 : self.size - self.n_bg_terms].reshape(
            self.n_basis - 1, self.n_kernel_terms
        )
        background = solution[self.size - self.n_bg_terms :].copy()
        conditioning = condition_number(self.matrix)
        if math.isinf(conditioning):
            _LOG.warning(
                "spatial kernel solution is singular: %d candidates cannot "
                "constrain its %d terms",
                self.n_used,
                self.size,
            )
        elif conditioning > self.max_condition:
            _LOG.warning(
                "spatial kernel solution exceeds the condition number limit "
                "(%.3e > %.3e)",
                conditioning,
                self.max_condition,
            )
        return SpatialSolution(
            coefficients, background, self.n_used, conditioning
        )


def _kron(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Return ``np.kron(a, b)`` of two 1-D or two 2-D arrays.

    The same products (each element is one ``a * b``), without
    np.kron's general-purpose set-up, which cost more than the products
    on these small blocks (thousands of calls per fit).
    """
    if a.ndim == 1:
        return (a[:, None] * b[None, :]).ravel()
    (m, n), (p, r) = a.shape, b.shape
    return (a[:, None, :, None] * b[None, :, None, :]).reshape(m * p, n * r)
