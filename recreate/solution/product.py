"""Renders as products: what the formats' writers take.

`rendered_result` wraps a rendered box (or the whole detector) as a
`recreate.pipeline.result.DifferenceResult`, so every output format
writes it as it writes a recreation; `triplet_result` wraps a box's
`Triplet` with its science and warped template too, for the formats
that show them (the triplet previews).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recreate.exposure import Exposure
from recreate.pipeline.result import DifferenceResult
from recreate.pipeline.template.build import WarpedTemplate
from recreate.pipeline.template.patches import _patch_polygon, patch_geometry
from recreate.solution.model import Solution
from recreate.solution.render_types import RenderInputs
from recreate.solution.triplet import Triplet


def rendered_result(
    solution: Solution, exposure: Exposure, inputs: RenderInputs
) -> DifferenceResult:
    """Return a render as a recreation result (no warped template).

    The patches' outlines are those the solve recorded (the same WCSs).
    """
    wcs = inputs.geometry.wcs
    bounds = (
        ()
        if wcs is None
        else tuple(
            _patch_polygon(patch_geometry(p), wcs) for p in inputs.patches
        )
    )
    decorrelation = solution.decorrelation
    return DifferenceResult(
        exposure=exposure,
        kernel=solution.kernel,
        template=None,
        provenance=solution.provenance(),
        variance_levels=(
            decorrelation.science_variance,
            decorrelation.template_variance,
        ),
        solution=solution,
        patch_bounds=bounds,
    )


def triplet_result(
    solution: Solution, triplet: Triplet, inputs: RenderInputs
) -> DifferenceResult:
    """Return a rendered box with its science and warped template.

    The result's ``template`` is the template on the box itself (a
    border of 0, its coverage the box's pixels with data), ``science``
    the visit image's pixels there: what the triplet previews show.
    """
    result = rendered_result(solution, triplet.difference, inputs)
    image = triplet.template.image
    template = WarpedTemplate(
        exposure=triplet.template,
        coverage=float(np.isfinite(image).mean()),
        psf_fwhm=None,
        patch_bounds=result.patch_bounds,
        warnings=(),
    )
    return dataclasses.replace(
        result, template=template, science=triplet.science
    )
