"""Renders as products: what the formats' writers take.

`rendered_result` wraps a rendered box (or the whole detector) as a
`recreate.pipeline.result.DifferenceResult`, so every output format
writes it as it writes a recreation.
"""

from __future__ import annotations

from recreate.exposure import Exposure
from recreate.pipeline.result import DifferenceResult
from recreate.pipeline.template.patches import _patch_polygon, patch_geometry
from recreate.solution.model import Solution
from recreate.solution.render import RenderInputs


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
