"""The spatial kernel fit: ip_diffim's ``PsfMatchTask._solve`` (v29).

Candidates sit in 128-px cells (afw ``SpatialCellSet``, row-major), each
cell ranked by rating, highest first. Every visit looks at the first
``nStarPerCell`` candidates of each cell not yet marked BAD, so a
rejected candidate is replaced by the next one in its cell. The loop:

1. ``BuildSingleKernelVisitor`` until it rejects nothing: fit each new
   candidate's own kernel; reject it on residual mean/rms (single-kernel
   clipping).
2. ``KernelSumVisitor``: reject kernel sums more than ``maxKsumSigma``
   clipped sigmas from the clipped mean; if any, start again at 1.
3. ``BuildSpatialKernelVisitor``: one linear system for all spatial
   coefficients, each candidate's normal equations weighted by the
   outer products of the Chebyshev terms at its centre; the first basis
   (which carries the kernel sum) has no spatial variation.
4. ``AssessSpatialKernelVisitor``: the spatial kernel and background at
   each candidate's centre, residual clipping again. Stop when nothing is
   rejected; else iterate (``maxSpatialIterations``), with a last refit.
"""

from __future__ import annotations

import math

from recreate.errors import ProcessingError
from recreate.pipeline.config import KernelConfig
from recreate.pipeline.kernel.basis import KernelBasis
from recreate.pipeline.kernel.linalg import clipped_mean_std, condition_number
from recreate.pipeline.kernel.single import (
    difference_residual,
    fit_single_kernel,
    passes_residual_clipping,
)
from recreate.pipeline.kernel.spatial import BBox, spatial_terms
from recreate.pipeline.kernel.spatial_fit import (
    CandidateCells,
    SpatialSolution,
    SpatialSystem,
)
from recreate.pipeline.kernel.stamps import (
    KernelCandidate,
    SingleSolution,
    Status,
)


def solve_spatial_kernel(
    cells: CandidateCells,
    basis: KernelBasis,
    config: KernelConfig,
    bbox: BBox,
    *,
    check_condition_number: bool = False,
) -> SpatialSolution:
    """Run v29's single-kernel, kernel-sum and spatial iterations.

    Parameters
    ----------
    cells
        The candidates in their cells.
    basis
        The kernel basis.
    config
        Kernel configuration.
    bbox
        Science bbox of the spatial functions.
    check_condition_number
        Also reject candidates whose single-kernel normal matrix has an
        eigenvalue condition number above ``config.max_condition_number``
        (``checkConditionNumber``; False in v29).

    Returns
    -------
    solution
        The spatial solution.

    Raises
    ------
    ProcessingError
        If no candidate survives to the spatial fit, or the spatial system
        cannot be solved.
    """
    per_cell = config.n_star_per_cell
    iteration = 0
    n_rejected_spatial = 0
    solution: SpatialSolution | None = None
    while iteration < config.max_spatial_iterations:
        while (
            _build_single_kernels(cells, basis, config, check_condition_number)
            != 0
        ):
            pass
        if _clip_kernel_sums(cells, per_cell, config) > 0:
            continue
        solution = _fit_spatial(cells, basis, config, bbox)
        n_good, n_rejected_spatial = _assess_spatial(
            cells, solution, basis, config, bbox
        )
        if n_good == 0 and n_rejected_spatial == 0:
            raise ProcessingError("no kernel candidates for the spatial fit")
        if n_rejected_spatial == 0:
            break
        iteration += 1
    if solution is None or (
        n_rejected_spatial > 0 and iteration == config.max_spatial_iterations
    ):
        solution = _fit_spatial(cells, basis, config, bbox)
    return solution


def _build_single_kernels(
    cells: CandidateCells,
    basis: KernelBasis,
    config: KernelConfig,
    check_condition_number: bool,
) -> int:
    """Fit the not-yet-fitted visited candidates; return how many failed."""
    rejected = 0
    for candidate in cells.visit(config.n_star_per_cell):
        if candidate.single is not None:
            continue
        solution = fit_single_kernel(
            candidate, basis, config.fit_for_background
        )
        candidate.single = solution
        if _single_kernel_is_good(
            candidate, solution, basis, config, check_condition_number
        ):
            candidate.status = Status.GOOD
        else:
            candidate.status = Status.BAD
            rejected += 1
    return rejected


def _single_kernel_is_good(
    candidate: KernelCandidate,
    solution: SingleSolution | None,
    basis: KernelBasis,
    config: KernelConfig,
    check_condition_number: bool,
) -> bool:
    """Judge a fresh single-kernel fit as ``BuildSingleKernelVisitor``."""
    if solution is None:
        return False
    if (
        check_condition_number
        and not 0.0
        < condition_number(solution.normal_matrix)
        <= config.max_condition_number
    ):
        return False
    residual = difference_residual(
        candidate, solution.weights, solution.background, basis
    )
    if residual is None or _is_nan(residual.mean, residual.rms):
        return False
    return not config.single_kernel_clipping or passes_residual_clipping(
        residual, config
    )


def _clip_kernel_sums(
    cells: CandidateCells, per_cell: int, config: KernelConfig
) -> int:
    """Reject candidates with outlying kernel sums; return how many.

    Raises
    ------
    ProcessingError
        If no candidate has a kernel sum, or the clipped statistics are
        not finite.
    """
    sums = [_solution(c).kernel_sum for c in cells.visit(per_cell)]
    if not sums:
        raise ProcessingError(
            "unable to determine the kernel sum: 0 candidates"
        )
    if len(sums) == 1:
        mean, std = sums[0], 0.0
    else:
        mean, std = clipped_mean_std(sums)
        if _is_nan(mean, std):
            raise ProcessingError(
                f"kernel sum statistics are NaN ({len(sums)} candidates)"
            )
    limit = config.max_ksum_sigma * std
    rejected = 0
    for candidate in cells.visit(per_cell):
        if (
            config.kernel_sum_clipping
            and abs(_solution(candidate).kernel_sum - mean) > limit
        ):
            candidate.status = Status.BAD
            rejected += 1
    return rejected


def _fit_spatial(
    cells: CandidateCells,
    basis: KernelBasis,
    config: KernelConfig,
    bbox: BBox,
) -> SpatialSolution:
    """Accumulate and solve the spatial system (``SpatialKernelSolution``).

    Raises
    ------
    ProcessingError
        If no fitted candidate is left, or the solution is not finite.
    """
    system = SpatialSystem(basis, config, bbox)
    for candidate in cells.visit(config.n_star_per_cell):
        if candidate.single is None:
            candidate.status = Status.BAD
            continue
        system.add(candidate)
    if system.n_used == 0:
        raise ProcessingError("no fitted kernel candidate for the spatial fit")
    return system.solve()


def _assess_spatial(
    cells: CandidateCells,
    solution: SpatialSolution,
    basis: KernelBasis,
    config: KernelConfig,
    bbox: BBox,
) -> tuple[int, int]:
    """Check each visited candidate against the spatial model.

    Returns
    -------
    n_good, n_rejected
        Candidates that passed, and that were rejected by clipping.
    """
    n_good = n_rejected = 0
    for candidate in cells.visit(config.n_star_per_cell):
        if candidate.single is None:
            candidate.status = Status.BAD
            continue
        terms = spatial_terms(
            candidate.x, candidate.y, bbox, config.spatial_kernel_order
        )
        weights = solution.coefficients @ terms
        background = 0.0
        if config.fit_for_background:
            bg_terms = spatial_terms(
                candidate.x, candidate.y, bbox, config.spatial_bg_order
            )
            background = float(solution.background @ bg_terms)
        residual = difference_residual(candidate, weights, background, basis)
        if residual is None:
            candidate.status = Status.BAD
            continue
        if _is_nan(residual.mean, residual.rms) or (
            config.spatial_kernel_clipping
            and not passes_residual_clipping(residual, config)
        ):
            candidate.status = Status.BAD
            n_rejected += 1
        else:
            candidate.status = Status.GOOD
            n_good += 1
    return n_good, n_rejected


def _solution(candidate: KernelCandidate) -> SingleSolution:
    """Return a candidate's single solution (it must have one).

    Raises
    ------
    ProcessingError
        If the candidate was never fitted (a bug in the visiting order).
    """
    if candidate.single is None:
        raise ProcessingError(
            f"kernel candidate {candidate.index} was never fitted"
        )
    return candidate.single


def _is_nan(*values: float) -> bool:
    """Say whether any value is NaN."""
    return any(math.isnan(v) for v in values)
