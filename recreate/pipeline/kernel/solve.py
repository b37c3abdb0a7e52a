"""The spatially varying Alard-Lupton matching kernel, as v29 fits it.

`fit_kernel` is ip_diffim's ``MakeKernelTask.run`` in convolveTemplate
mode: kernel candidates (stamps of side ``2 * kernel_size + 1`` at the
given stars), a single-kernel fit per candidate, kernel-sum and residual
clipping, and one linear solve for the spatial model: basis 0 constant,
the other 26 bases times Chebyshev order 1 (1, x, y), and an order-2
Chebyshev background (6 terms), all normalised on the science bbox. The
details live in `recreate.pipeline.kernel.stamps` (candidate stamps),
`recreate.pipeline.kernel.single` (single fits, residual statistics),
`recreate.pipeline.kernel.fit` (the iterations),
`recreate.pipeline.kernel.spatial_fit` (cells, the spatial system) and
`recreate.pipeline.kernel.linalg` (solver, clipped statistics); the basis
in `recreate.pipeline.kernel.basis`, the Chebyshev terms in
`recreate.pipeline.kernel.spatial`.

Kernels follow afw's convolution convention, which is a correlation with
the kernel image: ``out(x) = sum_u K(u) T(x + u)``.

The result is a `SolvedKernel` (`recreate.pipeline.kernel.solved`,
re-exported here with `KernelBasis` and `make_basis`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.pipeline.config import KernelConfig
from recreate.pipeline.kernel.basis import KernelBasis
from recreate.pipeline.kernel.fit import solve_spatial_kernel
from recreate.pipeline.kernel.solved import SolvedKernel
from recreate.pipeline.kernel.spatial import BBox
from recreate.pipeline.kernel.spatial_fit import CandidateCells
from recreate.pipeline.kernel.stamps import check_shapes, cut_candidates

#: Fewest usable candidates ``fit_kernel`` accepts (``minKernelSources``).
MIN_CANDIDATES = 3


def fit_kernel(
    template: npt.NDArray[np.float32],
    template_variance: npt.NDArray[np.float32],
    science: npt.NDArray[np.float32],
    science_variance: npt.NDArray[np.float32],
    candidates_xy: npt.ArrayLike,
    basis: KernelBasis,
    config: KernelConfig,
    *,
    border: int = 20,
    science_mask: npt.NDArray[np.int32] | None = None,
    template_mask: npt.NDArray[np.int32] | None = None,
    mask_planes: MaskPlanes | None = None,
    ratings: npt.ArrayLike | None = None,
    min_candidates: int = MIN_CANDIDATES,
    check_condition_number: bool = False,
    raise_on_ill_conditioned: bool = False,
) -> SolvedKernel:
    """Fit the spatially varying matching kernel and background (v29).

    Parameters
    ----------
    template, template_variance
        Warped template on the science grid grown by ``border`` px.
    science, science_variance
        Science image and variance.
    candidates_xy
        ``(n, 2)`` star centres ``(x, y)`` in science array pixels.
    basis
        The Alard-Lupton basis (`make_basis`).
    config
        Kernel configuration.
    border
        Template border in pixels.
    science_mask, template_mask, mask_planes
        Masks in the planes ``mask_planes`` names. Stamps touching
        ``config.stats_bad_mask_planes`` in the science mask are refused
        (``makeCandidateList``); those pixels, and template ones smeared by
        the kernel box, are left out of the residual statistics.
    ratings
        Ranking of the candidates within a cell, highest first; v29 uses
        the PSF flux. By default, the mean S/N of a 7x7 core.
    min_candidates
        Fewest usable candidates to attempt a fit.
    check_condition_number
        Reject candidates whose own normal matrix has a condition number
        above ``config.max_condition_number`` (v29: off).
    raise_on_ill_conditioned
        Raise when the spatial system's condition number exceeds
        ``config.max_spatial_condition_number``; v29 only logs a warning,
        which is the default here too.

    Returns
    -------
    kernel
        The solved kernel.

    Raises
    ------
    ProcessingError
        If fewer than ``min_candidates`` candidates are usable, the fit
        leaves none (the caller may then fall back to detection), or
        (on request) the spatial system is ill-conditioned.
    ValueError
        If array shapes disagree.
    """
    science_arrays = (science, science_variance)
    template_arrays = (template, template_variance)
    check_shapes(
        science_arrays, template_arrays, (science_mask, template_mask), border
    )
    xy = np.asarray(candidates_xy, dtype=np.float64).reshape(-1, 2)
    rating_values = (
        None if ratings is None else np.asarray(ratings, dtype=np.float64)
    )
    candidates = cut_candidates(
        science_arrays,
        template_arrays,
        (science_mask, template_mask, mask_planes),
        xy,
        rating_values,
        basis.size,
        config,
        border,
    )
    if len(candidates) < min_candidates:
        raise ProcessingError(
            f"only {len(candidates)} usable kernel candidates of {len(xy)}; "
            f"at least {min_candidates} are needed"
        )
    height, width = science.shape
    bbox: BBox = (0, 0, int(width), int(height))
    cells = CandidateCells(candidates, bbox, config.cell_size)
    solution = solve_spatial_kernel(
        cells,
        basis,
        config,
        bbox,
        check_condition_number=check_condition_number,
    )
    if raise_on_ill_conditioned and not (
        solution.condition_number <= config.max_spatial_condition_number
    ):
        raise ProcessingError(
            f"spatial kernel condition number {solution.condition_number:.3e}"
            f" exceeds {config.max_spatial_condition_number:.1e}"
        )
    return SolvedKernel(
        basis=basis,
        coefficients=solution.coefficients,
        background=solution.background,
        bbox=bbox,
        spatial_kernel_order=config.spatial_kernel_order,
        spatial_bg_order=config.spatial_bg_order,
        n_candidates=len(candidates),
        n_used=solution.n_used,
        condition_number=solution.condition_number,
    )
