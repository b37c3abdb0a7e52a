"""Generic FITS card helpers: HIERARCH keywords and typed card values."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from astropy.io import fits

from recreate.errors import FormatError

type Card = tuple[str, Any, str]

_STANDARD_KEY = re.compile(r"^[A-Z0-9_-]{1,8}$")


def fits_keyword(key: str) -> str:
    """Return the keyword to set for ``key``: HIERARCH unless standard.

    A key that is not an upper-case standard keyword of at most eight
    characters becomes HIERARCH, which also preserves its case.
    """
    return key if _STANDARD_KEY.match(key) else f"HIERARCH {key}"


def add_cards(header: fits.Header, cards: Iterable[Card]) -> None:
    """Append cards, as HIERARCH where a key is not a standard keyword.

    HIERARCH cards get no comment: one could push the card past 80
    characters, and astropy would then truncate it with a warning.

    Raises
    ------
    FormatError
        If astropy cannot make a card of a key and value (e.g. a
        non-ASCII string).
    """
    for key, value, comment in cards:
        keyword = fits_keyword(key)
        note = "" if keyword.startswith("HIERARCH") else comment
        try:
            card = fits.Card(keyword, value, note)
        except ValueError as exc:
            raise FormatError(
                f"cannot write card {key}={value!r} ({exc})"
            ) from exc
        header.append(card, end=True)


def typed_card(header: fits.Header, key: str, kind: type, source: str) -> Any:
    """Return a card's value checked to be of ``kind``, or None if absent.

    Parameters
    ----------
    header
        The header to read.
    key
        The card's keyword (without ``HIERARCH``).
    kind
        ``int``, ``float`` or ``str``; ints are accepted for floats, and
        a ``'NaN'`` string reads as a missing float.
    source
        The file name, for error messages.

    Returns
    -------
    value
        The value, or None when the card is absent or has no value.

    Raises
    ------
    FormatError
        If the value is not of ``kind``.
    """
    value = header.get(key)
    if value is None or value is fits.card.UNDEFINED:
        return None
    if kind is float and isinstance(value, str) and value.lower() == "nan":
        return None
    if isinstance(value, bool) or not _is_kind(value, kind):
        raise FormatError(
            f"{source}: card {key}={value!r} is not a {kind.__name__}"
        )
    return float(value) if kind is float else value


def _is_kind(value: object, kind: type) -> bool:
    """Say whether a card value is acceptable as ``kind``."""
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)
