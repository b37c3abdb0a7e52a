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
``serve``
    Serve the HTTP API (embedded Redis and LocalCluster unless
    ``RECREATE_*`` settings point at real ones).
``worker``
    Run a Dask worker for a remote scheduler.
``prewarm``
    Start a prewarm campaign on a running service (and follow it).
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recreate.errors import RecreateError
from workers.cli_output import (
    add_output_options,
    check_output,
    stored_kernel,
    write_output,
)
from workers.numba_cache import seed_numba_cache

DEFAULT_REPO_ENV = "RECREATE_BUTLER_REPO"
DEFAULT_REPO = "data/demo-repo"

Handler = Callable[[argparse.Namespace], int]


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
    """Return the parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="recreate",
        description="Recreate Rubin LSST difference images on demand.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    simulate = sub.add_parser(
        "simulate", help="write a simulated LSST-like Butler repository"
    )
    simulate.add_argument("--repo", required=True, help="new repository path")
    _add_simulation_options(simulate)
    simulate.set_defaults(handler=_simulate)

    info = sub.add_parser("info", help="summarise a Butler repository")
    _add_repo_option(info)
    info.set_defaults(handler=_info)

    inputs = sub.add_parser(
        "inputs", help="show the inputs of one difference image"
    )
    inputs.add_argument("visit", type=_non_negative_int, help="visit id")
    inputs.add_argument("detector", type=_non_negative_int, help="detector")
    _add_repo_option(inputs)
    inputs.add_argument("--instrument", help="instrument (if several)")
    inputs.add_argument("--json", action="store_true", help="print JSON")
    inputs.set_defaults(handler=_inputs)

    get = sub.add_parser(
        "get", help="recreate one difference image from a Butler repository"
    )
    get.add_argument("visit", type=_non_negative_int, help="visit id")
    get.add_argument("detector", type=_non_negative_int, help="detector")
    _add_repo_option(get)
    get.add_argument(
        "--url", help="fetch from the service at this URL instead of --repo"
    )
    get.add_argument("--instrument", help="instrument (if several)")
    add_output_options(get)
    get.set_defaults(handler=_get)

    from workers.cli_subtract import add_subtract_parser

    add_subtract_parser(sub)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    _add_serve_options(serve)
    serve.set_defaults(handler=_serve)

    worker = sub.add_parser(
        "worker", help="run a Dask worker for a remote scheduler"
    )
    worker.add_argument("scheduler", help="scheduler address (tcp://...)")
    worker.add_argument(
        "--nthreads", type=_positive_int, default=1, help="task threads"
    )
    worker.add_argument(
        "--memory-limit",
        default="auto",
        help="memory limit Dask enforces (e.g. 4GiB; default: auto)",
    )
    worker.add_argument(
        "--resources", help='abstract resources, e.g. "RECOMPUTE=1"'
    )
    worker.add_argument("--name", help="worker name (e.g. the pod name)")
    worker.add_argument("--local-directory", help="scratch directory")
    worker.set_defaults(handler=_worker)

    from workers.prewarm import add_prewarm_parser

    add_prewarm_parser(sub, _non_negative_int)

    run = sub.add_parser(
        "run", help="the main job on embedded defaults (see README)"
    )
    _add_serve_options(run)
    _add_simulation_options(run, default_preset="demo")
    run.set_defaults(handler=_run)
    return parser


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--repo``, ``--host`` and ``--port`` (defaults: settings)."""
    parser.add_argument(
        "--repo",
        help=f"Butler repository (default: ${DEFAULT_REPO_ENV} or "
        f"{DEFAULT_REPO})",
    )
    parser.add_argument(
        "--host", help="address to bind (default: $RECREATE_HOST)"
    )
    parser.add_argument(
        "--port", type=_non_negative_int, help="port (default: $RECREATE_PORT)"
    )


def _add_repo_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--repo``, defaulting to $RECREATE_BUTLER_REPO or data/."""
    parser.add_argument(
        "--repo",
        default=os.environ.get(DEFAULT_REPO_ENV, DEFAULT_REPO),
        help=f"Butler repository (default: ${DEFAULT_REPO_ENV} or "
        f"{DEFAULT_REPO})",
    )


def _add_simulation_options(
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
        "--seed", type=_non_negative_int, default=1, help="master seed"
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=min(2, os.cpu_count() or 1),
        help="rendering processes (results do not depend on it)",
    )


def _non_negative_int(text: str) -> int:
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


def _positive_int(text: str) -> int:
    """Parse a positive integer for argparse."""
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _simulate(args: argparse.Namespace) -> int:
    """Write a simulated repository and report what it holds."""
    from recreate.simulate.repository import simulate_repository

    start = time.perf_counter()
    result = simulate_repository(
        args.repo, args.preset, args.seed, jobs=args.jobs, log=print
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

    summary = summarize_repository(open_butler(args.repo))
    print(f"repository:       {args.repo}")
    for line in summary.lines():
        print(line)
    return 0


def _inputs(args: argparse.Namespace) -> int:
    """Print the visit image and template patches of one key."""
    from dataclasses import asdict

    from recreate.butler import find_inputs, open_butler

    found = find_inputs(
        open_butler(args.repo),
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


def _get(args: argparse.Namespace) -> int:
    """Recreate one difference image through the Butler and write it."""
    from recreate.butler import open_butler
    from recreate.memory import retain_freed_memory
    from recreate.recreation import recreate_from_butler

    check_output(args)
    if args.url:
        return _get_remote(args)
    retain_freed_memory()
    result = recreate_from_butler(
        open_butler(args.repo),
        args.visit,
        args.detector,
        instrument=args.instrument,
        kernel=stored_kernel(args),
    )
    return write_output(args, result)


def _get_remote(args: argparse.Namespace) -> int:
    """Fetch one difference image from a running service."""
    from recreate.client import Client
    from recreate.errors import InvalidRequestError

    if args.kernel:
        raise InvalidRequestError("--kernel works with --repo, not --url")
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


def _service_settings(args: argparse.Namespace) -> Any:
    """Return the settings, with the command line's overrides."""
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
    """Simulate the demo repository if missing, then serve the API."""
    from workers.serve import serve

    settings = _service_settings(args)
    repo = Path(settings.butler_repo)
    args.repo = str(repo)
    if not (repo / "butler.yaml").exists():
        print(f"no repository at {repo}: simulating one ({args.preset})")
        _simulate(args)
    _info(args)
    serve(settings, announce=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
