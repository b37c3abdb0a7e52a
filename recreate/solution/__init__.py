"""Solve once, render any region: a difference image as a solution.

A difference image is split in two (``design.md``, "Solve and render"):

``solve``
    `solve` (`recreate.solution.solve`): everything that depends on the
    whole detector - the warped template's statistics, ScaleVariance,
    the kernel fit, the decorrelation's levels and kernel, DP2's
    HIGH_VARIANCE levels and bin-40 background - kept as a `Solution`
    (`recreate.solution.model`), a few tens of kilobytes.
``render``
    `render` (`recreate.solution.render`): the planes of any box of
    parent pixels, from the solution and what the box needs of the
    inputs (`read_inputs_for_box`). The full product is the render of
    the whole detector (`recreate.pipeline.subtract.subtract` is solve,
    then that render), and a box's planes are the same pixels of it,
    bit for bit: the Fourier-space steps run on a fixed tile grid
    anchored to the detector (`recreate.solution.layout`).
``fits``
    `write_solution`, `read_solution`, `solution_bytes`,
    `solution_from_bytes`: a deterministic FITS file that anyone can
    read without this package (its layout is in
    `recreate.solution.fits`), guarded by a checksum.

A service keeps solutions, not pixels::

    solution = solve(science, patches, config=config, inputs=refs).solution
    data = solution_bytes(solution)                  # store it
    ...
    solution = solution_from_bytes(data)             # a stamp, later
    solution.check_inputs(config, butler_refs(found))
    inputs = read_inputs_for_box(found, solution, box)
    region = render(solution, inputs, box)            # an Exposure
    data = get_format(name).to_bytes(rendered_result(solution, region, inputs))

`render_triplet` renders the same box with its science and warped
template (a `Triplet`; the difference bit-identical to `render`'s), and
`triplet_result` wraps it for the triplet previews.

``render`` raises `InvalidRequestError` for a box that is empty or
leaves the detector (clip it first); `read_solution` and
`solution_from_bytes` raise `FormatError` for a corrupt file, and
`Solution.check_inputs` raises `SolutionMismatchError` for a solution of
other inputs, recipe, configuration or code version. Everything here is
safe to call from several threads at once.

Nothing here imports Redis, Dask or web code.
"""

from __future__ import annotations

from recreate.solution.fits import (
    read_solution,
    solution_bytes,
    solution_from_bytes,
    write_solution,
)
from recreate.solution.inputs import (
    forget_visit_image,
    read_geometry,
    read_inputs_for_box,
    read_inputs_whole,
)
from recreate.solution.model import DetectorFrame, Solution
from recreate.solution.product import rendered_result, triplet_result
from recreate.solution.render import (
    needed_science_box,
    render,
    render_full,
)
from recreate.solution.render_types import RenderInputs
from recreate.solution.solve import SolveResult, solve
from recreate.solution.triplet import Triplet, render_triplet

__all__ = [
    "DetectorFrame",
    "RenderInputs",
    "Solution",
    "SolveResult",
    "Triplet",
    "forget_visit_image",
    "needed_science_box",
    "read_geometry",
    "read_inputs_for_box",
    "read_inputs_whole",
    "read_solution",
    "render",
    "render_full",
    "render_triplet",
    "rendered_result",
    "solution_bytes",
    "solution_from_bytes",
    "solve",
    "triplet_result",
    "write_solution",
]
