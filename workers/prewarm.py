"""``recreate prewarm``: start a campaign on a service, optionally wait.

::

    recreate prewarm --url URL --keys keys.txt --wait
    recreate prewarm --url URL --visits 2024110900001 --detectors 0 1 2
    recreate prewarm --url URL --cone 53.1 -27.9 0.2 --band r
    recreate prewarm --url URL --visit-range A B --solutions-only

``--solutions-only`` stores the keys' solutions (tens of KB each: any
region then renders in milliseconds) instead of their products.

A keys file holds one key per line, ``visit detector`` (spaces or a
comma; ``#`` starts a comment), or a JSON list of ``{"visit",
"detector"}`` objects.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from recreate.errors import InvalidRequestError
from workers.commands import Command, add_format_option, non_negative_int

#: Width of the progress bar in characters.
BAR_WIDTH = 30


def configure_prewarm(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``recreate prewarm``."""
    integer = non_negative_int
    parser.add_argument("--url", required=True, help="service URL")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--keys", help="file of 'visit detector' lines or JSON")
    what.add_argument("--visits", nargs="+", type=integer, help="visit ids")
    what.add_argument(
        "--visit-range", nargs=2, type=integer, metavar=("MIN", "MAX")
    )
    what.add_argument(
        "--day-obs-range", nargs=2, type=integer, metavar=("MIN", "MAX")
    )
    what.add_argument(
        "--cone",
        nargs=3,
        type=float,
        metavar=("RA", "DEC", "RADIUS"),
        help="sky cone in degrees",
    )
    parser.add_argument(
        "--detectors", nargs="+", type=integer, help="only these detectors"
    )
    parser.add_argument("--band", help="only this band")
    parser.add_argument("--instrument", help="instrument (if several)")
    parser.add_argument("--name", default="prewarm", help="campaign name")
    parser.add_argument(
        "--priority", type=int, default=0, help="-5 to 5 among campaigns"
    )
    # No default here: the service's own default format applies.
    add_format_option(parser, default=None)
    parser.add_argument(
        "--solutions-only",
        action="store_true",
        help="store the keys' solutions (kilobytes each; regions render "
        "from them) instead of their products",
    )
    parser.add_argument(
        "--wait", action="store_true", help="show progress until done"
    )


def prewarm(args: argparse.Namespace) -> int:
    """Start the campaign; with ``--wait``, follow it to the end.

    Returns 0 when every key is cached, 1 when some failed.
    """
    from recreate.client import Client

    keys = read_keys(args.keys) if args.keys else None
    selection = None if keys is not None else selection_of(args)
    with Client(args.url) as client:
        created = client.prewarm(
            args.name,
            keys=keys,
            selection=selection,
            priority=args.priority,
            instrument=args.instrument,
            output_format=args.format,
            solutions_only=args.solutions_only,
        )
        print(f"campaign {created['id']}: {created['total']} keys")
        print(f"follow it at {created['url']}")
        if not args.wait:
            return 0
        campaign = client.wait_for_campaign(
            created["id"], progress=lambda c: show_progress(c, sys.stderr)
        )
    print(file=sys.stderr)
    return report(campaign)


def selection_of(args: argparse.Namespace) -> dict[str, Any]:
    """Return the selection the command line describes."""
    selection: dict[str, Any] = {}
    if args.visits:
        selection["visits"] = args.visits
    if args.visit_range:
        selection["visit_range"] = args.visit_range
    if args.day_obs_range:
        selection["day_obs_range"] = args.day_obs_range
    if args.cone:
        ra, dec, radius = args.cone
        selection["cone"] = {"ra": ra, "dec": dec, "radius": radius}
    if args.detectors:
        selection["detectors"] = args.detectors
    if args.band:
        selection["band"] = args.band
    return selection


def read_keys(path: str) -> list[tuple[int, int]]:
    """Read keys from a text or JSON file.

    Raises
    ------
    InvalidRequestError
        If a line or entry is not a (visit, detector) pair of integers;
        the message names the file and line.
    """
    text = Path(path).read_text()
    if text.lstrip().startswith("["):
        return _json_keys(path, text)
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].replace(",", " ").split()
        if not content:
            continue
        try:
            visit, detector = (int(part) for part in content)
        except ValueError:
            raise InvalidRequestError(
                f"{path}:{number}: expected 'visit detector', got {line!r}"
            ) from None
        keys.append((visit, detector))
    if not keys:
        raise InvalidRequestError(f"{path} holds no keys")
    return keys


def _json_keys(path: str, text: str) -> list[tuple[int, int]]:
    """Read a JSON list of ``{"visit", "detector"}`` objects."""
    try:
        entries = json.loads(text)
        return [(int(e["visit"]), int(e["detector"])) for e in entries]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidRequestError(
            f"{path}: not a JSON list of {{visit, detector}}: {error}"
        ) from None


def show_progress(campaign: dict[str, Any], stream: TextIO) -> None:
    """Draw a one-line progress bar for a campaign."""
    counts = campaign["counts"]
    total = max(1, counts["total"])
    finished = sum(
        counts[name]
        for name in ("already_cached", "done", "failed", "cancelled")
    )
    filled = round(BAR_WIDTH * finished / total)
    eta = campaign.get("eta_seconds")
    eta_text = f", ETA {_duration(eta)}" if eta is not None else ""
    stream.write(
        f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
        f"{finished}/{counts['total']} ({counts['already_cached']} cached, "
        f"{counts['running']} running, {counts['failed']} failed)"
        f"{eta_text}  "
    )
    stream.flush()


def report(campaign: dict[str, Any]) -> int:
    """Print how a campaign ended; return 1 if any key failed."""
    counts = campaign["counts"]
    made, kept = (
        ("solved", "stored")
        if campaign.get("solutions_only")
        else ("recreated", "cached")
    )
    print(
        f"campaign {campaign['id']} {campaign['state']}: "
        f"{counts['done']} {made}, {counts['already_cached']} already "
        f"{kept}, {counts['failed']} failed, {counts['cancelled']} cancelled"
    )
    for failure in campaign["failed"]:
        print(
            f"  failed: visit {failure['visit']} detector "
            f"{failure['detector']}: {failure['code']}: {failure['message']}"
        )
    return 1 if counts["failed"] else 0


def _duration(seconds: float) -> str:
    """Format seconds as ``1h02m``, ``3m05s`` or ``12s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


PREWARM = Command(
    "prewarm",
    "prewarm the cache of a service (a campaign)",
    configure_prewarm,
    prewarm,
)
