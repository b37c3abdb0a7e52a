"""What every ``recreate`` subcommand is made of, and shared options.

A subcommand is a `Command`: a name, a one-line help, a function that
adds its arguments and the handler that runs it. `workers.cli` builds
the parser from a table of them, the same way for each (prewarm's lives
in `workers.prewarm`).

This module stays light (``recreate --help`` imports it): the format
choices come from the registry, `recreate.formats`, which imports no
writer.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from recreate.formats import DEFAULT_FORMAT, FORMATS, format_names

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]


class Subparsers(Protocol):
    """What argparse's ``add_subparsers()`` returns, as used here."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add one subcommand's parser."""


@dataclass(frozen=True)
class Command:
    """One subcommand of ``recreate``.

    Attributes
    ----------
    name
        What the user types.
    help
        One line for ``recreate --help``.
    configure
        Adds the subcommand's arguments to its parser.
    run
        Runs it; returns the exit status.
    """

    name: str
    help: str
    configure: Configure
    run: Handler

    def add_to(self, subparsers: Subparsers) -> None:
        """Add this command's parser to ``recreate``'s subparsers."""
        parser = subparsers.add_parser(
            self.name, help=self.help, description=self.help
        )
        self.configure(parser)
        parser.set_defaults(handler=self.run)


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


def add_format_option(
    parser: argparse.ArgumentParser, *, default: str | None = DEFAULT_FORMAT
) -> None:
    """Add ``--format``, its choices and their help from the registry."""
    described = "; ".join(
        f"{fmt.name}: {fmt.description}" for fmt in FORMATS.values()
    )
    parser.add_argument(
        "--format",
        choices=format_names(),
        default=default,
        help=f"output format ({described})",
    )


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``visit`` and ``detector``."""
    parser.add_argument("visit", type=non_negative_int, help="visit id")
    parser.add_argument("detector", type=non_negative_int, help="detector")


#: `workers.settings.Settings`' default ``butler_repo``, written out
#: (a test checks they agree): building the parser must not import
#: pydantic-settings, about 0.1 s of every command's start, which
#: ``recreate subtract`` and ``--help`` never need.
DEFAULT_REPO = "data/demo-repo"

#: ``--repo``'s help: unset, the settings name the repository.
REPO_HELP = (
    f"Butler repository (default: $RECREATE_BUTLER_REPO, else {DEFAULT_REPO})"
)


def add_repo_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--repo``; unset, the settings name the repository."""
    parser.add_argument("--repo", help=REPO_HELP)


def repo_of(args: argparse.Namespace) -> str:
    """Return ``--repo``, or the repository the settings name."""
    repo: str | None = args.repo
    if repo is not None:
        return repo
    from workers.settings import Settings  # pydantic: see DEFAULT_REPO

    return Settings().butler_repo
