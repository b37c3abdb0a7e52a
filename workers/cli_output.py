"""The output options of ``recreate get`` and ``recreate subtract``.

``-o``, ``--format``, ``--kernel``, ``--overwrite``, ``--compress`` and
``--decorrelated-psf``; the check that the output can be written before
any work, and the writing with its one-paragraph summary. The CLI
writes uncompressed planes by default: its reader is local, and GZIP
tile compression would be a third of a 2k x 2k subtraction's time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Add ``-o``, ``--format``, ``--kernel`` and the writing options."""
    parser.add_argument("-o", "--output", required=True, help="output FITS")
    parser.add_argument(
        "--format",
        choices=("dp1", "lsst-images"),
        default="dp1",
        help="dp1: afw ExposureF layout with the kernel (default); "
        "lsst-images: Rubin's DP2-style DifferenceImage",
    )
    parser.add_argument(
        "--kernel",
        help="reuse the kernel stored in this earlier output (no fit)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing file"
    )
    parser.add_argument(
        "--compress",
        action="store_true",
        help="tile-compress the dp1 planes (lossless; smaller, slower)",
    )
    parser.add_argument(
        "--decorrelated-psf",
        action="store_true",
        help="add the decorrelated difference's PSF as an extension "
        "(DECORRELATED_PSF) beside the release's science PSF (dp1 only)",
    )


def check_output(args: argparse.Namespace) -> None:
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


def stored_kernel(args: argparse.Namespace) -> Any:
    """Return the kernel of ``--kernel FILE``, or None."""
    if args.kernel is None:
        return None
    from recreate.recreation import load_kernel

    return load_kernel(args.kernel)


def write_output(args: argparse.Namespace, result: Any) -> int:
    """Write a result and print a one-paragraph summary of it."""
    from recreate.recreation import write_result

    write_result(
        result,
        args.output,
        output_format=args.format,
        overwrite=args.overwrite,
        compress=args.compress,
        decorrelated_psf=args.decorrelated_psf,
    )
    prov = result.provenance
    total = sum(result.timings.values())
    print(
        f"wrote {args.output} ({args.format}): template coverage "
        f"{prov.template_coverage:.1%}, kernel {prov.kernel_size} px "
        f"(sum {prov.kernel_sum:.4f}, {prov.n_kernel_used} stars), "
        f"{total:.1f} s"
    )
    for note in prov.notes:
        print(f"note: {note}")
    return 0
