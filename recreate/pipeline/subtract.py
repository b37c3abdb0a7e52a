"""The whole recipe: from a visit image and its patches to a difference.

`subtract` runs the AlardLuptonSubtractTask in convolveTemplate mode, as
DP1 (v29) and DP2 (v30) did, with the GetTemplateTask before it and what
DetectAndMeasureTask does to the pixels after it; the recipe
(`recreate.pipeline.recipes`) sets every parameter:

1. warp and stitch the template patches onto the science grid (+20 px),
   with DP2's HIGH_VARIANCE plane where the recipe asks for it;
2. ScaleVariance on the template, then on the science image;
3. masks: clear the science detection planes; in the template keep only
   the preserved planes (NO_DATA, BAD; DP2 also HIGH_VARIANCE), and copy
   SAT to SAT_TEMPLATE (`recreate.pipeline.prepare`);
4. PSF sizes (from the PSF models, or measured from the stars);
5. kernel candidates and the spatially varying Alard-Lupton kernel fit,
   or a stored kernel fed back in (then the fit is skipped);
6. convolve the template, subtract it and (DP1) the fitted differential
   background;
7. DMTN-021 decorrelation;
8. the 5-sigma two-sided detection planes; for DP2 also the bin-8 and
   bin-40 backgrounds and NO_DATA pixels set to 0
   (`recreate.pipeline.sources.detect_and_measure`).

It is the solve (`recreate.solution.solve`: steps 1-5, the
decorrelation's levels and kernel, DP2's bin-40 background) followed by
the render of the whole detector (`recreate.solution.render`: steps
6-8 on the fixed tile grid), so every region rendered from the same
solution is the same pixels of this product, bit for bit.

The result carries the science image's WCS, PSF, calibration and
metadata, and the provenance cards of `recreate.pipeline.provenance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from recreate.exposure import Exposure
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.provenance import InputRef
from recreate.pipeline.result import DifferenceResult
from recreate.pipeline.template import WarpedTemplate
from recreate.solution.layout import plan_render
from recreate.solution.render import (
    detection_planes,
    predetection,
    region_exposure,
)
from recreate.solution.render_types import RenderInputs
from recreate.solution.solve import SolveResult, _timed, solve


def subtract(
    science: Exposure,
    patches: Sequence[Exposure],
    *,
    config: PipelineConfig = DEFAULT_CONFIG,
    inputs: Sequence[InputRef] = (),
    kernel: SolvedKernel | None = None,
    notes: Sequence[str] = (),
    warped: WarpedTemplate | None = None,
) -> DifferenceResult:
    """Recreate the difference image of a science exposure.

    Parameters
    ----------
    science
        The visit image (nJy, with WCS).
    patches
        The template coadd patches that overlap it.
    config
        The recipe; DP1's v29 defaults unless told otherwise.
    inputs
        Provenance names of the science image and patches, in order.
    kernel
        A stored kernel to reuse: the fit is skipped and the same kernel
        gives the same planes.
    notes
        Provenance notes from the caller (e.g. "variance estimated").
    warped
        The template already on the science grid (``patches`` unused):
        for pixel-aligned inputs, or a retry that reuses its template.

    Returns
    -------
    result
        The difference image, its kernel, template and provenance.

    Raises
    ------
    NoOverlapError
        If the template covers less than 10% of the science image.
    KernelFitError
        If too few kernel candidates are found, or the kernel solution is
        ill-conditioned (a `ProcessingError`).
    """
    solved = solve(
        science,
        patches,
        config=config,
        inputs=inputs,
        kernel=kernel,
        notes=notes,
        warped=warped,
    )
    return render_whole(solved, science, patches)


def render_whole(
    solved: SolveResult, science: Exposure, patches: Sequence[Exposure]
) -> DifferenceResult:
    """Render the whole detector from a solve made in this process.

    The solve's warped template (and, for DP2, its pre-detection
    difference) are reused; the planes are those of any render of the
    solution (`recreate.solution.render.render`).
    """
    solution = solved.solution
    timings = dict(solved.timings)
    height, width = science.shape
    inputs = RenderInputs(
        science,
        ImageGeometry(science.wcs, science.xy0, science.shape),
        patches,
    )
    box = PixelBox(0, 0, width, height)
    planes = solved.predetection
    if planes is None:
        with _timed(timings, "difference"):
            plan = plan_render(
                box,
                (height, width),
                solution.config().render.tile_size,
                solution.halos(),
            )
            planes = predetection(
                solution, inputs, plan, solved.template_window()
            )
    with _timed(timings, "detect"):
        planes = detection_planes(solution, planes)
        exposure = region_exposure(solution, inputs, planes, box)
    provenance = replace(
        solution.provenance(), kernel_from_storage=solved.reused
    )
    decorrelation = solution.decorrelation
    return DifferenceResult(
        exposure,
        solution.kernel,
        solved.template,
        provenance,
        timings,
        (decorrelation.science_variance, decorrelation.template_variance),
        solution,
        solved.template.patch_bounds,
        science,
    )


__all__ = ["DifferenceResult", "render_whole", "subtract"]
