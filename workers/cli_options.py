"""Options the ``recreate`` subcommands share, and argparse value types."""

from __future__ import annotations

import argparse
import os

from recreate.pipeline.recipes import RECIPES

DEFAULT_REPO_ENV = "RECREATE_BUTLER_REPO"
DEFAULT_REPO = "data/demo-repo"


def add_repo_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--repo``, defaulting to $RECREATE_BUTLER_REPO or data/."""
    parser.add_argument(
        "--repo",
        default=os.environ.get(DEFAULT_REPO_ENV, DEFAULT_REPO),
        help=f"Butler repository (default: ${DEFAULT_REPO_ENV} or "
        f"{DEFAULT_REPO})",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Add ``-o``, ``--format``, ``--kernel`` and ``--overwrite``."""
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
        "--lossy16",
        action="store_true",
        help="lsst-images format only: quantise image and variance as "
        "DP2's lossy16 write recipe (RICE_1, dither seed from the data ID)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing file"
    )


def add_simulation_options(
    parser: argparse.ArgumentParser, default_preset: str = "ci"
) -> None:
    """Add the simulator's ``--preset``, ``--seed`` and ``--jobs``."""
    from recreate.simulate.presets import PRESETS

    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=default_preset,
        help=f"repository size (default: {default_preset})",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=1, help="master seed"
    )
    parser.add_argument(
        "--release",
        choices=tuple(RECIPES),
        default="dp1",
        help="dp1: visit images as afw ExposureF (default); dp2: as "
        "lsst.images VisitImages, DP2's storage classes",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=min(2, os.cpu_count() or 1),
        help="rendering processes (results do not depend on it)",
    )


def non_negative_int(text: str) -> int:
    """Parse a non-negative integer for argparse, naming a bad value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def positive_int(text: str) -> int:
    """Parse a positive integer for argparse."""
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_recipe_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--recipe`` (default: the repository's release's)."""
    parser.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        help="dp1 (pipelines v29) or dp2 (v30.0.6); default: the "
        "repository's release's (dp2 where visit images are "
        "lsst.images VisitImages)",
    )
