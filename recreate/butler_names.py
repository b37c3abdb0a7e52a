"""The instruments and detectors a Butler holds, kept per open Butler.

Instruments and detectors are registered once and never removed, so a
name seen before needs no query (a detector's first stamp pays a Butler
lookup, and these are two of its queries); a name not seen is looked up
again, so one registered since is found.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from recreate.errors import DataNotFoundError, InvalidRequestError

__all__ = ["check_detector", "resolve_instrument"]

#: Instrument names and detector ids read from each open Butler.
_KNOWN_NAMES: weakref.WeakKeyDictionary[
    Any, dict[tuple[str, object], list[Any]]
] = weakref.WeakKeyDictionary()


def resolve_instrument(butler: Any, instrument: str | None) -> str:
    """Return the instrument, defaulting to the repository's only one."""
    names = _known(butler, "instrument", None)
    if not names or (instrument is not None and instrument not in names):
        names = _remember(butler, "instrument", None, _instrument_names)
    if instrument is None:
        if len(names) == 1:
            return names[0]
        raise InvalidRequestError(
            f"the repository holds instruments {names}; name one"
        )
    if instrument not in names:
        raise DataNotFoundError(
            f"instrument {instrument!r} is not in the repository "
            f"(instruments: {', '.join(names) or 'none'})"
        )
    return instrument


def _instrument_names(butler: Any, _: object) -> list[Any]:
    """Return the repository's instruments, sorted."""
    return sorted(
        rec.name for rec in butler.registry.queryDimensionRecords("instrument")
    )


def _known(butler: Any, element: str, parent: object) -> list[Any]:
    """Return the names of ``element`` last read from this Butler.

    Instruments and detectors are registered once and never removed, so
    a name seen before needs no query (a stamp's Butler lookup is on
    every first stamp of a detector); a name not seen is looked up
    again (`_remember`), so one registered since is found.
    """
    try:
        return _KNOWN_NAMES.get(butler, {}).get((element, parent), [])
    except TypeError:  # a Butler that takes no weak reference
        return []


def _remember(
    butler: Any,
    element: str,
    parent: object,
    query: Callable[[Any, object], list[Any]],
) -> list[Any]:
    """Query the names of ``element`` and keep them (see `_known`)."""
    names = query(butler, parent)
    # A Butler that takes no weak reference is simply not remembered.
    with contextlib.suppress(TypeError):
        _KNOWN_NAMES.setdefault(butler, {})[(element, parent)] = names
    return names


def _detector_ids(butler: Any, instrument: object) -> list[Any]:
    """Return an instrument's detector ids, sorted."""
    return sorted(
        rec.id
        for rec in butler.registry.queryDimensionRecords(
            "detector", instrument=instrument
        )
    )


def check_detector(butler: Any, instrument: str, detector: int) -> None:
    """Say clearly when a detector number does not exist."""
    ids = _known(butler, "detector", instrument)
    if detector not in ids:
        ids = _remember(butler, "detector", instrument, _detector_ids)
    if detector not in ids:
        span = f"{ids[0]}-{ids[-1]}" if ids else "none"
        raise DataNotFoundError(
            f"detector {detector} of {instrument} does not exist "
            f"(detectors: {span})"
        )
