"""``recreate solve`` and ``recreate cutout``: solutions and regions.

``solve`` writes the solution of one (visit, detector) of a Butler
repository (`recreate.solution`): a small FITS file from which any
region, or the whole difference image (``recreate get --solution``),
is rendered without refitting. ``cutout`` renders a box of the
difference image - pixel corners, or a centre on the sky and a size -
from a stored solution (checked against the repository's inputs) or
from one solved on the spot; only what the box needs of the inputs is
read. A box reaching beyond the detector is clipped with a warning; one
wholly outside it, or larger than ``--max-size``, is an error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from recreate.pipeline.recipes import RECIPE_NAMES
from workers.commands import (
    Command,
    add_format_option,
    add_key_arguments,
    add_repo_option,
    positive_int,
    repo_of,
)

if TYPE_CHECKING:
    from recreate.butler import DiffimInputs
    from recreate.numerics.box import PixelBox
    from recreate.solution import Solution

#: The largest side of a cutout, unless ``--max-size`` says otherwise:
#: a whole detector fits.
DEFAULT_MAX_SIZE = 4096


def _configure_solve(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recreate solve``."""
    add_key_arguments(parser)
    add_repo_option(parser)
    _add_request_options(parser)
    parser.add_argument(
        "-o", "--output", required=True, help="solution FITS file to write"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing file"
    )


def _configure_cutout(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recreate cutout``."""
    add_key_arguments(parser)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--box",
        nargs=4,
        type=int,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="parent pixels of the box; X1 and Y1 exclusive",
    )
    where.add_argument(
        "--center",
        nargs=2,
        type=float,
        metavar=("RA", "DEC"),
        help="centre of the box on the sky, degrees (with --size)",
    )
    parser.add_argument(
        "--size", type=positive_int, help="side of the box around --center"
    )
    parser.add_argument(
        "--max-size",
        type=positive_int,
        default=DEFAULT_MAX_SIZE,
        help=f"largest side allowed, px (default {DEFAULT_MAX_SIZE})",
    )
    add_solution_option(parser)
    add_repo_option(parser)
    _add_request_options(parser)
    parser.add_argument("-o", "--output", required=True, help="output FITS")
    add_format_option(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing file"
    )


def add_solution_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--solution FILE``: render from a stored solution."""
    parser.add_argument(
        "--solution",
        help="render from this stored solution (recreate solve) instead "
        "of solving; it must be of the same inputs, recipe and code",
    )


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--instrument`` and ``--recipe``."""
    parser.add_argument("--instrument", help="instrument (if several)")
    parser.add_argument(
        "--recipe",
        choices=RECIPE_NAMES,
        help="dp1 (pipelines v29) or dp2 (v30.0.6); default: a stored "
        "solution's, else the repository's release's",
    )


def _solve(args: argparse.Namespace) -> int:
    """Solve one (visit, detector) and write its solution."""
    from recreate.inputs import read_butler_inputs
    from recreate.memory import retain_freed_memory
    from recreate.recreation import recipe_config
    from recreate.solution import solve, write_solution

    _check_output(args)
    retain_freed_memory()
    start = time.perf_counter()
    found = _find(args)
    config = recipe_config(found, args.recipe)
    inputs = read_butler_inputs(found, config=config)
    solved = solve(
        inputs.science, inputs.templates, config=config, inputs=inputs.refs
    )
    solution = solved.solution
    write_solution(solution, args.output, overwrite=args.overwrite)
    size = Path(args.output).stat().st_size
    print(
        f"wrote {args.output} ({size / 1024:.1f} KB, recipe "
        f"{solution.recipe}): template coverage "
        f"{solution.template_coverage:.1%}, kernel "
        f"{solution.kernel.basis.size} px ({solution.kernel.n_used} stars), "
        f"{time.perf_counter() - start:.1f} s"
    )
    for note in solution.notes:
        print(f"note: {note}")
    return 0


def _cutout(args: argparse.Namespace) -> int:
    """Render a box of a difference image and write it."""
    from recreate.memory import retain_freed_memory
    from recreate.solution import (
        read_geometry,
        read_inputs_for_box,
        render,
        rendered_result,
    )

    _check_output(args)
    retain_freed_memory()
    start = time.perf_counter()
    found = _find(args)
    box = _region(args, found)
    solution = solution_of(args, found)
    inputs = read_inputs_for_box(found, solution, box)
    region = render(solution, inputs, box)
    _write(args, rendered_result(solution, region, inputs))
    height, width = read_geometry(found).shape
    print(
        f"wrote {args.output} ({args.format}, recipe {solution.recipe}): "
        f"box ({box.x0}, {box.y0}, {box.x0 + box.width}, "
        f"{box.y0 + box.height}) of the {width}x{height} detector, "
        f"{time.perf_counter() - start:.2f} s"
    )
    return 0


def solution_of(args: argparse.Namespace, found: DiffimInputs) -> Solution:
    """Return ``--solution``'s solution, checked, or a new one.

    Raises
    ------
    FormatError
        If the file is not a solution, or is corrupt.
    SolutionMismatchError
        If it is of other inputs, another recipe or another code version.
    """
    from recreate.inputs import butler_refs, read_butler_inputs
    from recreate.recreation import recipe_config
    from recreate.solution import read_solution, solve

    if args.solution is not None:
        solution = read_solution(args.solution)
        config = recipe_config(found, args.recipe or solution.recipe)
        solution.check_inputs(config, butler_refs(found))
        return solution
    config = recipe_config(found, args.recipe)
    inputs = read_butler_inputs(found, config=config)
    return solve(
        inputs.science, inputs.templates, config=config, inputs=inputs.refs
    ).solution


def _region(args: argparse.Namespace, found: DiffimInputs) -> PixelBox:
    """Return the box asked for, clipped to the detector (with a warning).

    Raises
    ------
    InvalidRequestError
        If the box is empty, too large, or wholly outside the detector.
    """
    from recreate.errors import InvalidRequestError
    from recreate.numerics.box import PixelBox
    from recreate.solution import read_geometry
    from workers.regions import box_around, clip_box, detector_box

    geometry = read_geometry(found)
    if args.box is not None:
        x0, y0, x1, y1 = args.box
        if x1 <= x0 or y1 <= y0:
            raise InvalidRequestError(
                f"box ({x0}, {y0}, {x1}, {y1}) holds no pixel: X1 and Y1 "
                "are exclusive and must exceed X0 and Y0"
            )
        box = PixelBox(x0, y0, x1 - x0, y1 - y0)
    else:
        if args.size is None:
            raise InvalidRequestError("--center needs --size")
        ra, dec = args.center
        box = box_around(geometry, ra, dec, args.size)
    corners = _corners(box)
    if max(box.width, box.height) > args.max_size:
        raise InvalidRequestError(
            f"box {corners} is {box.width}x{box.height} px; at most "
            f"{args.max_size} px a side (--max-size)"
        )
    clipped = clip_box(box, geometry)
    if clipped.empty:
        raise InvalidRequestError(
            f"box {corners} is outside the detector "
            f"{_corners(detector_box(geometry))}"
        )
    if clipped != box:
        print(
            f"recreate: warning: box {corners} clipped to the detector: "
            f"{_corners(clipped)}",
            file=sys.stderr,
        )
    return clipped


def _corners(box: PixelBox) -> tuple[int, int, int, int]:
    """Return ``(x0, y0, x1, y1)``, X1 and Y1 exclusive."""
    return (box.x0, box.y0, box.x0 + box.width, box.y0 + box.height)


def _find(args: argparse.Namespace) -> DiffimInputs:
    """Return the inputs of the key the arguments name."""
    from recreate.butler import find_inputs, open_butler

    return find_inputs(
        open_butler(repo_of(args)),
        args.visit,
        args.detector,
        instrument=args.instrument,
    )


def _check_output(args: argparse.Namespace) -> None:
    """Fail before any work when the output cannot be written."""
    from recreate.errors import InvalidRequestError

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise InvalidRequestError(
            f"output {str(out)!r} exists; pass --overwrite to replace it"
        )
    if not out.parent.is_dir():
        raise InvalidRequestError(
            f"output directory {str(out.parent)!r} does not exist"
        )


def _write(args: argparse.Namespace, result: object) -> None:
    """Write a rendered result in the format asked for."""
    from recreate.formats import get_format
    from recreate.pipeline.result import DifferenceResult

    if not isinstance(result, DifferenceResult):
        msg = f"cannot write a {type(result).__name__}"
        raise TypeError(msg)
    get_format(args.format).write(
        result, args.output, overwrite=args.overwrite
    )


SOLVE = Command(
    "solve",
    "write the solution of one difference image (renders any region)",
    _configure_solve,
    _solve,
)
CUTOUT = Command(
    "cutout",
    "render a box of a difference image, from a stored solution or not",
    _configure_cutout,
    _cutout,
)
