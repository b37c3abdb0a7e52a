"""Solve a difference image: everything that needs the whole detector.

`solve` runs the steps of AlardLuptonSubtractTask that take the whole
detector into account, and keeps what a render needs of them:

1. the template warped and stitched on the whole grown grid
   (GetTemplateTask): its coverage, its PSF size and (DP2) its
   HIGH_VARIANCE levels need all of it;
2. ScaleVariance on the template, then on the science image: the
   factors are statistics over every unmasked pixel;
3. the PSF sizes, the kernel candidates and the spatially varying
   kernel fit (skipped for a kernel given);
4. the decorrelation's variance levels (MEANCLIP over the difference's
   unmasked pixels: the science mask and the template mask grown by the
   kernel, no convolved pixel needed) and its kernel;
5. DP2 only: the bin-40 background of the difference. Its bins skip what
   the first detection (on the difference less a bin-8 background)
   found, so this step renders the whole pre-detection difference
   (`recreate.solution.render.predetection`, with the masks of step 4),
   which is kept for a full product made at once
   (`recreate.solution.difference_background`).

Independent steps run side by side on two threads
(`recreate.numerics.threads.beside`): the science image's ScaleVariance,
mask, PSF size and candidate detection (`recreate.solution.sides`)
beside the template warp, the variance levels beside the kernel fit.
Each is the serial step on the same arrays: the same bits, and with one
thread they run in the order above.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import numpy.typing as npt

from recreate import __version__
from recreate.errors import (
    InvalidRequestError,
    KernelFitError,
    NoOverlapError,
    ProcessingError,
)
from recreate.exposure import Exposure, MaskPlanes
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox
from recreate.numerics.threads import beside
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.kernel import (
    KernelBasis,
    SolvedKernel,
    fit_kernel,
    make_basis,
)
from recreate.pipeline.match.decorrelate import (
    decorrelation_kernel,
    variance_levels,
)
from recreate.pipeline.match.mask_growth import grow_mask
from recreate.pipeline.prepare import (
    difference_planes,
    grown_template_planes,
    prepared_template_mask,
    template_psf_fwhm,
)
from recreate.pipeline.provenance import InputRef
from recreate.pipeline.sources import Detections, select_kernel_candidates
from recreate.pipeline.template import WarpedTemplate
from recreate.pipeline.template.warp import Planes as TemplatePlanes
from recreate.pipeline.template.window import TemplateWindow
from recreate.solution.difference_background import difference_background
from recreate.solution.layout import plan_render
from recreate.solution.model import DetectorFrame, Solution
from recreate.solution.render import predetection
from recreate.solution.render_types import (
    Planes,
    RenderInputs,
    SolvedMasks,
)
from recreate.solution.sides import prepare_science, template_and_variance

FloatPlane = npt.NDArray[np.float32]
MaskPlane = npt.NDArray[np.int32]


@dataclass(frozen=True, eq=False)
class SolveResult:
    """A solution, and what the solve made on the way.

    Attributes
    ----------
    solution
        The solution.
    template
        The warped template on the whole grown grid.
    predetection
        The whole detector's decorrelated difference before detection,
        when the solve made it (DP2); None otherwise.
    reused
        Whether the kernel was given rather than fitted.
    timings
        Seconds spent in each step.
    """

    solution: Solution
    template: WarpedTemplate
    predetection: Planes | None
    reused: bool
    timings: dict[str, float] = field(default_factory=dict)

    def template_window(self) -> TemplateWindow:
        """Return the warped template as a render's template window."""
        exposure = self.template.exposure
        height, width = exposure.shape
        whole = PixelBox(0, 0, width, height)
        planes = TemplatePlanes(
            exposure.image, exposure.variance, exposure.mask
        )
        return TemplateWindow(planes, exposure.mask_planes, whole, whole)


def solve(
    science: Exposure,
    patches: Sequence[Exposure],
    *,
    config: PipelineConfig,
    inputs: Sequence[InputRef] = (),
    kernel: SolvedKernel | None = None,
    notes: Sequence[str] = (),
    warped: WarpedTemplate | None = None,
) -> SolveResult:
    """Solve the difference image of a visit image (module notes).

    Parameters
    ----------
    science
        The whole visit image (nJy, with WCS).
    patches
        The template patches that may overlap it (whole or cut-outs).
    config
        The recipe.
    inputs
        Provenance names of the science image and patches, in order.
    kernel
        A stored kernel to reuse: the fit is skipped.
    notes
        Provenance notes from the caller.
    warped
        The template already on the science grid (``patches`` unused):
        for pixel-aligned inputs, or a retry that reuses its template.

    Returns
    -------
    result
        The solution and the warped template.

    Raises
    ------
    NoOverlapError
        If the template covers too little of the detector.
    KernelFitError
        If too few kernel candidates are found or the kernel solution is
        ill-conditioned (a `ProcessingError`).
    ProcessingError
        If ScaleVariance fails.
    InvalidRequestError
        If the recipe turns the decorrelation off (the render needs it).
    """
    if not config.subtract.do_decorrelation:
        raise InvalidRequestError(
            f"recipe {config.recipe!r} turns the decorrelation off; "
            "solutions are made with it only"
        )
    timings: dict[str, float] = {}
    notes = list(notes)
    planes = difference_planes(science.mask_planes, config)
    with beside(
        partial(
            prepare_science,
            science,
            planes,
            config,
            find_sources=kernel is None,
        )
    ) as prepared_science:
        with _timed(timings, "template"):
            template, (template_variance, template_factor) = (
                template_and_variance(science, patches, config, warped)
            )
        notes.extend(template.warnings)
        with _timed(timings, "scale_variance"):
            prepared = prepared_science()
    notes.extend(prepared.notes)
    template_mask = prepared_template_mask(template.exposure, planes, config)
    fwhms = (prepared.fwhm, template_psf_fwhm(template, notes))
    basis = (
        kernel.basis
        if kernel is not None
        else make_basis(*fwhms, config.kernel)
    )
    masks = (prepared.mask, template_mask)
    variances = (prepared.variance, template_variance)
    reused = kernel is not None
    with beside(
        partial(_levels, masks, variances, planes, basis.half_width, config)
    ) as levels_and_mask:
        if kernel is None:
            try:
                kernel = _fit(
                    replace(
                        science,
                        variance=prepared.variance,
                        mask=prepared.mask,
                        mask_planes=planes,
                    ),
                    (template, template_variance, template_mask),
                    (basis, prepared.fwhm, prepared.detections),
                    config,
                    timings,
                )
            except ProcessingError as error:
                _raise_if_failure_expected(template.coverage, config, error)
                # The data's, not the service's: the same inputs fail alike.
                raise KernelFitError(str(error)) from error
        with _timed(timings, "decorrelation"):
            height, width = science.shape
            levels, difference_mask = levels_and_mask()
            decorrelation = decorrelation_kernel(
                kernel.kernel_image(width / 2.0, height / 2.0),
                *levels,
                basis.half_width,
            )
    factors = (prepared.variance_factor, template_factor)
    # The whole-plane arrays are not needed any more: a DP2 solve goes on
    # to render the whole difference.
    # A DP2 solve renders the whole difference next, which remakes the
    # masks made here: hand them over.
    solved_masks = (
        SolvedMasks(template_mask, difference_mask)
        if config.subtract.difference_background is not None
        else None
    )
    del variances, masks, prepared, template_variance
    del template_mask, difference_mask
    solution = Solution(
        recipe=config.recipe,
        pipelines_version=config.pipelines_version,
        config_hash=config.config_hash(),
        code_version=__version__,
        inputs=tuple(inputs),
        frame=DetectorFrame.of(science),
        template_coverage=template.coverage,
        notes=tuple(notes),
        science_fwhm=fwhms[0],
        template_fwhm=fwhms[1],
        kernel=kernel,
        science_variance_factor=factors[0],
        template_variance_factor=factors[1],
        decorrelation=decorrelation,
        high_variance=template.high_variance,
        background=None,
        solved_with=config,
    )
    result = SolveResult(solution, template, None, reused, timings)
    if config.subtract.difference_background is not None:
        result = _with_difference_background(
            result, science, patches, solved_masks
        )
    return result


def _levels(
    masks: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]],
    variances: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
    planes: MaskPlanes,
    half: int,
    config: PipelineConfig,
) -> tuple[tuple[float, float], MaskPlane]:
    """Return the decorrelation's variance levels, and the mask used.

    The levels (science, template) skip the difference's masked pixels:
    the science mask and the template mask grown by the kernel's
    half-width ``half`` (no convolved pixel needed, nor the fitted
    kernel: they run beside the fit). That mask is the difference's
    before detection, returned too.
    """
    science_mask, template_mask = masks
    border = config.template.border
    height, width = science_mask.shape
    grown = template_mask[
        border - half : border + height + half,
        border - half : border + width + half,
    ]
    carried = planes.value_of_present(grown_template_planes(config))
    mask = science_mask | grow_mask(grown, half, carried)
    levels = variance_levels(
        variances[0],
        variances[1][border:-border, border:-border],
        mask,
        planes,
        config.subtract.decorrelation_ignore_planes,
    )
    return levels, mask


def _with_difference_background(
    result: SolveResult,
    science: Exposure,
    patches: Sequence[Exposure],
    masks: SolvedMasks | None,
) -> SolveResult:
    """Render the whole difference and add its bin-40 background (DP2).

    ``masks`` are the solve's of the same template (not made again).
    """
    solution = result.solution
    config = solution.config()
    timings = result.timings
    with _timed(timings, "difference"):
        inputs = RenderInputs(
            science,
            ImageGeometry(science.wcs, science.xy0, science.shape),
            patches,
        )
        height, width = science.shape
        plan = plan_render(
            PixelBox(0, 0, width, height),
            (height, width),
            config.render.tile_size,
            solution.halos(),
        )
        planes = predetection(
            solution, inputs, plan, result.template_window(), masks
        )
    with _timed(timings, "difference_background"):
        grid = difference_background(planes, solution.science_fwhm, config)
    solution = replace(solution, background=grid)
    return replace(result, solution=solution, predetection=planes)


def _raise_if_failure_expected(
    coverage: float, config: PipelineConfig, error: ProcessingError
) -> None:
    """Turn a failed fit into "no work" when coverage made it expected.

    v29 tolerates a PSF-matching failure when the template covers less
    than ``minTemplateFractionForExpectedSuccess`` (20%): the task ends
    with NoWorkFound and no difference image is made. Here that is a
    NoOverlapError, so the user hears "not enough template", not "bug".
    """
    expected = config.template.expected_success_fraction
    if coverage < expected:
        raise NoOverlapError(
            f"template covers only {100.0 * coverage:.1f}% of the "
            f"detector (< {100.0 * expected:g}%) and the kernel fit "
            f"failed ({error}); as in v29, no difference image is made"
        ) from error


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the block to ``timings[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _fit(
    science: Exposure,
    template: tuple[WarpedTemplate, FloatPlane, MaskPlane],
    basis_and_sources: tuple[KernelBasis, float, Detections | None],
    config: PipelineConfig,
    timings: dict[str, float],
) -> SolvedKernel:
    """Select kernel candidates and fit the spatially varying kernel.

    ``science`` carries the scaled variance and the prepared mask, in
    the difference image's planes; ``template`` is the warped template
    with its scaled variance and prepared mask; the basis comes with the
    science PSF FWHM and the candidate detections already made on the
    science image (None: detected here).
    """
    warped, template_variance, template_mask = template
    basis, science_fwhm, detections = basis_and_sources
    with _timed(timings, "kernel_candidates"):
        candidates = select_kernel_candidates(
            science,
            warped.exposure.image,
            template_mask,
            science.mask_planes,
            border=config.template.border,
            kernel_size=basis.size,
            science_fwhm=science_fwhm,
            config=config.sources,
            detections=detections,
        )
    with _timed(timings, "kernel_fit"):
        return fit_kernel(
            warped.exposure.image,
            template_variance,
            science.image,
            science.variance,
            np.column_stack([candidates.x, candidates.y]),
            basis,
            config.kernel,
            border=config.template.border,
            science_mask=science.mask,
            template_mask=template_mask,
            mask_planes=science.mask_planes,
            ratings=candidates.flux,
            min_candidates=config.sources.min_sources,
        )
