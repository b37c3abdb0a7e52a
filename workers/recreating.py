"""``recreate get``, and the output options it shares with ``subtract``.

``get`` recreates one key of a Butler repository in this process (or
fetches it from a running service with ``--url``, or renders it from a
stored solution without refitting with ``--solution``,
`workers.solving`); ``subtract``
(`workers.cli_subtract`) takes any science and template FITS files.
Both write a format of the registry (`recreate.formats`) with the
options added here: ``-o``, ``--format`` (``dp1``: uncompressed planes,
what the command line's local reader reads fastest; ``dp1-compressed``:
lossless GZIP_2 tiles, as DP1's files; ``lsst-images``), ``--kernel``,
``--lossy16``, ``--decorrelated-psf`` and ``--overwrite``. The writer of
the format asked for is the only one imported, so a DP1 file never
loads lsst.images.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from recreate.pipeline.recipes import RECIPE_NAMES
from workers.commands import (
    Command,
    add_format_option,
    add_key_arguments,
    add_repo_option,
    repo_of,
)
from workers.solving import add_solution_option, solution_of

if TYPE_CHECKING:
    from recreate.pipeline.kernel import SolvedKernel
    from recreate.pipeline.result import DifferenceResult


def _configure_get(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recreate get``."""
    add_key_arguments(parser)
    add_repo_option(parser)
    parser.add_argument(
        "--url", help="fetch from the service at this URL instead of --repo"
    )
    parser.add_argument("--instrument", help="instrument (if several)")
    parser.add_argument(
        "--recipe",
        choices=RECIPE_NAMES,
        help="dp1 (pipelines v29) or dp2 (v30.0.6); default: a stored "
        "solution's, else the repository's release's (dp2 where visit "
        "images are lsst.images VisitImages)",
    )
    add_solution_option(parser)
    add_output_options(parser)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Add ``-o``, ``--format``, ``--kernel`` and the writing options."""
    parser.add_argument("-o", "--output", required=True, help="output FITS")
    add_format_option(parser)
    parser.add_argument(
        "--kernel",
        help="reuse the kernel stored in this earlier output (no fit)",
    )
    parser.add_argument(
        "--lossy16",
        action="store_true",
        help="lsst-images format only: quantise image and variance as "
        "DP2's lossy16 write recipe (RICE_1, dither seed from the data ID)",
    )
    parser.add_argument(
        "--decorrelated-psf",
        action="store_true",
        help="dp1 formats only: add the decorrelated difference's PSF as "
        "an extension (DECORRELATED_PSF) beside the release's science PSF",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing file"
    )


def _get(args: argparse.Namespace) -> int:
    """Recreate one difference image through the Butler and write it."""
    # Before the pipeline's imports: a bad output costs nothing.
    check_output(args)
    from recreate.butler import open_butler
    from recreate.memory import retain_freed_memory
    from recreate.recreation import recreate_from_butler

    if args.url:
        return _get_remote(args)
    retain_freed_memory()
    if args.solution is not None:
        return write_output(args, _from_solution(args))
    result = recreate_from_butler(
        open_butler(repo_of(args)),
        args.visit,
        args.detector,
        instrument=args.instrument,
        recipe=args.recipe,
        kernel=stored_kernel(args),
    )
    return write_output(args, result)


def _from_solution(args: argparse.Namespace) -> DifferenceResult:
    """Render the whole difference image from ``--solution``.

    Raises
    ------
    InvalidRequestError
        If ``--kernel`` is given too.
    SolutionMismatchError, FormatError
        If the solution is not of this request, or not a solution.
    """
    from recreate.butler import find_inputs, open_butler
    from recreate.errors import InvalidRequestError
    from recreate.solution import read_inputs_whole, render_full
    from recreate.solution.product import rendered_result

    if args.kernel is not None:
        raise InvalidRequestError(
            "--kernel and --solution both give a kernel; choose one"
        )
    found = find_inputs(
        open_butler(repo_of(args)),
        args.visit,
        args.detector,
        instrument=args.instrument,
    )
    start = time.perf_counter()
    solution = solution_of(args, found)
    inputs = read_inputs_whole(found, solution.config())
    result = rendered_result(solution, render_full(solution, inputs), inputs)
    return replace(result, timings={"render": time.perf_counter() - start})


def check_output(args: argparse.Namespace) -> None:
    """Fail before any work when the output cannot be written as asked."""
    from recreate.errors import InvalidRequestError
    from recreate.formats import check_write_options

    check_write_options(
        args.format,
        lossy16=args.lossy16,
        decorrelated_psf=args.decorrelated_psf,
    )
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise InvalidRequestError(
            f"output {str(out)!r} exists; pass --overwrite to replace it"
        )
    if not out.parent.is_dir():
        raise InvalidRequestError(
            f"output directory {str(out.parent)!r} does not exist"
        )


def stored_kernel(args: argparse.Namespace) -> SolvedKernel | None:
    """Return the kernel of ``--kernel FILE``, or None."""
    if args.kernel is None:
        return None
    from recreate.recreation import load_kernel

    return load_kernel(args.kernel)


def write_output(args: argparse.Namespace, result: DifferenceResult) -> int:
    """Write a result and print a one-paragraph summary of it."""
    from recreate.recreation import write_result

    write_result(
        result,
        args.output,
        output_format=args.format,
        overwrite=args.overwrite,
        lossy16=args.lossy16,
        decorrelated_psf=args.decorrelated_psf,
    )
    prov = result.provenance
    total = sum(result.timings.values())
    print(
        f"wrote {args.output} ({args.format}, recipe {prov.recipe}): "
        "template coverage "
        f"{prov.template_coverage:.1%}, kernel {prov.kernel_size} px "
        f"(sum {prov.kernel_sum:.4f}, {prov.n_kernel_used} stars), "
        f"{total:.1f} s"
    )
    for note in prov.notes:
        print(f"note: {note}")
    return 0


def _get_remote(args: argparse.Namespace) -> int:
    """Fetch one difference image from a running service."""
    from recreate.client import Client
    from recreate.errors import InvalidRequestError

    for option, given in (
        ("--kernel", args.kernel),
        ("--solution", args.solution),
        ("--recipe", getattr(args, "recipe", None)),
        ("--lossy16", args.lossy16),
        ("--decorrelated-psf", args.decorrelated_psf),
    ):
        if given:
            raise InvalidRequestError(f"{option} works with --repo, not --url")
    with Client(args.url) as client:
        product = client.to_file(
            args.visit,
            args.detector,
            args.output,
            instrument=args.instrument,
            output_format=args.format,
            overwrite=args.overwrite,
        )
    print(
        f"wrote {args.output} ({args.format}, {len(product.data)} bytes, "
        f"cache {product.cache or 'n/a'}, sha256 {product.etag[:16]})"
    )
    return 0


GET = Command(
    "get",
    "recreate one difference image from a Butler repository",
    _configure_get,
    _get,
)
