"""The ``recreate`` command line.

Subcommands:

``simulate``
    Write a simulated LSST-like Butler repository.
``info``
    Summarise a repository: visits, detectors, patches, datasets.
``inputs``
    Show the visit image and template patches of a (visit, detector).
``get``
    Recreate the difference image of a (visit, detector) from a Butler
    repository, locally (``--repo``), or fetch it from a running service
    (``--url``).
``subtract``
    Recreate a difference image from any science and template FITS
    files (Rubin layout or plain images): the any-survey mode
    (`workers.cli_subtract`).
``solve``
    Write the solution of a (visit, detector): the kernel and every
    statistic a render needs, a small FITS file (``get --solution``
    renders the whole image from it without refitting).
``cutout``
    Render a box of a difference image (pixel corners, or a sky centre
    and a size) from a stored solution or a fresh one.
``serve``
    Serve the HTTP API (embedded Redis and LocalCluster unless
    ``RECREATE_*`` settings point at real ones).
``worker``
    Run a Dask worker for a remote scheduler.
``prewarm``
    Start a prewarm campaign on a running service (and follow it).
``register``
    Register virtual ``difference_image`` datasets in a Butler
    repository, served by a running service (``butler.get`` works).
``run``
    The main job on embedded defaults: simulate the demo repository if
    there is none, then serve the API and print a curl command.

Errors the user can fix are printed as one line on stderr, never as a
traceback, and the command exits with status 2 (1 for internal errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recreate.errors import RecreateError
from recreate.pipeline.recipes import RECIPE_NAMES
from recreate.simulate import PRESET_NAMES
from workers.cli_subtract import SUBTRACT
from workers.commands import (
    REPO_HELP,
    Command,
    Handler,
    add_key_arguments,
    add_repo_option,
    non_negative_int,
    positive_int,
    repo_of,
)
from workers.numba_cache import seed_numba_cache
from workers.recreating import GET
from workers.solving import CUTOUT, SOLVE

if TYPE_CHECKING:
    from workers.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``recreate`` command; return its exit status."""
    # Before any compiled kernel is loaded (the image's prebuilt cache).
    seed_numba_cache()
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except RecreateError as error:
        print(f"recreate: error: {error}", file=sys.stderr)
        return 2 if error.user_facing else 1
    except OSError as error:
        # A missing input file, an existing output, a full disk: the
        # user can act on these, and the message names the path.
        print(f"recreate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recreate: interrupted", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand (see `_commands`)."""
    parser = argparse.ArgumentParser(
        prog="recreate",
        description="Recreate Rubin LSST difference images on demand.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in _commands():
        command.add_to(sub)
    return parser


def _commands() -> tuple[Command, ...]:
    """Return every subcommand, in the order ``--help`` lists them."""
    from workers.prewarm import PREWARM

    return (
        Command(
            "simulate",
            "write a simulated LSST-like Butler repository",
            _configure_simulate,
            _simulate,
        ),
        Command(
            "info", "summarise a Butler repository", add_repo_option, _info
        ),
        Command(
            "inputs",
            "show the inputs of one difference image",
            _configure_inputs,
            _inputs,
        ),
        GET,
        SUBTRACT,
        SOLVE,
        CUTOUT,
        Command("serve", "serve the HTTP API", _add_serve_options, _serve),
        Command(
            "worker",
            "run a Dask worker for a remote scheduler",
            _configure_worker,
            _worker,
        ),
        PREWARM,
        Command(
            "register",
            "register virtual difference_image datasets served by a "
            "running service",
            _configure_register,
            _register,
        ),
        Command(
            "run",
            "the main job on embedded defaults (see README)",
            _configure_run,
            _run,
        ),
    )


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recreate simulate``."""
    parser.add_argument("--repo", required=True, help="new repository path")
    _add_simulation_options(parser)


def _configure_inputs(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recreate inputs``."""
    add_key_arguments(parser)
    add_repo_option(parser)
    parser.add_argument("--instrument", help="instrument (if several)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _configure_worker(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recreate worker``."""
    parser.add_argument("scheduler", help="scheduler address (tcp://...)")
    parser.add_argument(
        "--nthreads", type=positive_int, default=1, help="task threads"
    )
    parser.add_argument(
        "--memory-limit",
        default="auto",
        help="memory limit Dask enforces (e.g. 4GiB; default: auto)",
    )
    parser.add_argument(
        "--resources", help='abstract resources, e.g. "RECOMPUTE=1"'
    )
    parser.add_argument("--name", help="worker name (e.g. the pod name)")
    parser.add_argument("--local-directory", help="scratch directory")


def _configure_register(parser: argparse.ArgumentParser) -> None:
    from recreate.virtual import DEFAULT_RUN, FLAVOURS

    add_repo_option(parser)
    parser.add_argument(
        "--url", required=True, help="base URL of the running service"
    )
    parser.add_argument(
        "--flavour",
        choices=sorted(FLAVOURS),
        default="dp1",
        help="dp1: DP1's ExposureF (afw); dp2: DP2's DifferenceImage "
        "(lsst.images, pip-installable)",
    )
    parser.add_argument(
        "--run", default=DEFAULT_RUN, help="RUN collection to register in"
    )
    parser.add_argument(
        "--visits",
        nargs="+",
        type=non_negative_int,
        default=[],
        help="only these visits (default: every recreatable one)",
    )


def _configure_run(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recreate run``."""
    _add_serve_options(parser)
    _add_simulation_options(parser, default_preset="demo")


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--repo``, ``--host`` and ``--port`` (defaults: settings)."""
    parser.add_argument("--repo", help=REPO_HELP)
    parser.add_argument(
        "--host", help="address to bind (default: $RECREATE_HOST)"
    )
    parser.add_argument(
        "--port", type=non_negative_int, help="port (default: $RECREATE_PORT)"
    )


def _add_simulation_options(
    parser: argparse.ArgumentParser, default_preset: str = "ci"
) -> None:
    """Add the simulator's ``--preset``, ``--seed`` and ``--jobs``."""
    parser.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default=default_preset,
        help=f"repository size (default: {default_preset})",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=1, help="master seed"
    )
    parser.add_argument(
        "--release",
        choices=RECIPE_NAMES,
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


def _simulate(args: argparse.Namespace) -> int:
    """Write a simulated repository and report what it holds."""
    from recreate.simulate.repository import simulate_repository

    start = time.perf_counter()
    result = simulate_repository(
        args.repo,
        args.preset,
        args.seed,
        jobs=args.jobs,
        log=print,
        release=args.release,
    )
    print(
        f"wrote {result.visit_images} visit images, "
        f"{result.template_patches} template patches and "
        f"{result.truth_rows} truth rows to {result.root} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    """Print a repository summary."""
    from recreate.butler import open_butler
    from recreate.summary import summarize_repository

    repo = repo_of(args)
    summary = summarize_repository(open_butler(repo))
    print(f"repository:       {repo}")
    for line in summary.lines():
        print(line)
    return 0


def _inputs(args: argparse.Namespace) -> int:
    """Print the visit image and template patches of one key."""
    from dataclasses import asdict

    from recreate.butler import find_inputs, open_butler

    found = find_inputs(
        open_butler(repo_of(args)),
        args.visit,
        args.detector,
        instrument=args.instrument,
    )
    if args.json:
        print(json.dumps(asdict(found), indent=2, default=str))
        return 0
    print(
        f"{found.instrument} visit {found.visit} detector {found.detector} "
        f"({found.band}, {found.physical_filter}, day_obs {found.day_obs})"
    )
    print(f"visit_image    {found.visit_image.dataset_id}")
    for template in found.templates:
        data_id = template.data_id
        print(
            f"template_coadd {template.dataset_id}  tract "
            f"{data_id['tract']} patch {data_id['patch']}"
        )
    return 0


def _register(args: argparse.Namespace) -> int:
    from recreate.butler import open_butler
    from recreate.virtual import register_virtual_diffims

    butler = open_butler(repo_of(args), writeable=True)
    count = register_virtual_diffims(
        butler,
        args.url,
        flavour=args.flavour,
        run=args.run,
        visits=args.visits,
    )
    print(
        f"registered {count} difference_image datasets in {args.run}; "
        f'butler.get("difference_image", visit=..., detector=..., '
        f'collections="{args.run}")'
    )
    return 0


def _service_settings(args: argparse.Namespace) -> Settings:
    """Return the settings, with the command line's overrides."""
    # Imported here: pydantic-settings is ~0.1 s that only the service
    # commands need (`workers.commands.DEFAULT_REPO`).
    from workers.settings import Settings

    overrides = {
        name: value
        for name, value in (
            ("butler_repo", args.repo),
            ("host", args.host),
            ("port", args.port),
        )
        if value is not None
    }
    settings = Settings()
    return settings.model_copy(update=overrides) if overrides else settings


def _serve(args: argparse.Namespace) -> int:
    """Serve the API until interrupted."""
    from workers.serve import serve

    serve(_service_settings(args))
    return 0


def _worker(args: argparse.Namespace) -> int:
    """Run a Dask worker until stopped."""
    from workers.serve import run_worker

    return run_worker(
        args.scheduler,
        nthreads=args.nthreads,
        memory_limit=args.memory_limit,
        resources=args.resources,
        name=args.name,
        local_directory=args.local_directory,
    )


def _run(args: argparse.Namespace) -> int:
    """Simulate the demo repository if missing, then serve the API.

    The port is taken first: a port in use is said at once, not after
    minutes of simulation.
    """
    from workers.serve import listen_on, serve

    settings = _service_settings(args)
    sock = listen_on(settings.host, settings.port)
    try:
        repo = Path(settings.butler_repo)
        args.repo = str(repo)
        if not (repo / "butler.yaml").exists():
            print(f"no repository at {repo}: simulating one ({args.preset})")
            _simulate(args)
        _info(args)
        serve(settings, announce=True, sock=sock)
    finally:
        sock.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
