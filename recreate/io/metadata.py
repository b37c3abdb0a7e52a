"""Free-form primary-header cards <-> ``Exposure.metadata``.

Which cards are kept
--------------------
From a file this package wrote (marked by ``HIERARCH RECREATE FORMAT
VERSION``) every primary card not mapped to an Exposure field by
`recreate.io.headers`: they are exactly the metadata written. From any
other file only the Butler provenance cards (``LSST BUTLER ...``) that
are not mapped, so a DP1 header's hundreds of instrument and VisitInfo
cards are not dragged along. Keys keep their case (HIERARCH cards are
case-preserving); cards without a value read as None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits

from recreate.errors import FormatError
from recreate.io.cards import Card
from recreate.io.headers import FORMAT_VERSION_KEY, mapped_keys

#: Prefixes of cards kept as metadata from files other tools wrote.
KEPT_FOREIGN_PREFIXES = ("LSST BUTLER ",)
#: Cards that describe the HDU itself, never metadata.
_STRUCTURAL = re.compile(
    r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|BSCALE|BZERO|"
    r"BLANK|BUNIT|EXTNAME|EXTVER|EXTTYPE|INHERIT|COMMENT|HISTORY|CHECKSUM|"
    r"DATASUM|END|)$"
)


def metadata_cards(metadata: Mapping[str, Any]) -> list[Card]:
    """Return cards for free-form metadata items.

    Parameters
    ----------
    metadata
        Keys are card keywords (HIERARCH when not standard); values are
        None, bool, int, finite float or str (numpy scalars accepted).

    Returns
    -------
    cards
        ``(key, value, comment)`` triples.

    Raises
    ------
    FormatError
        If a key clashes with a card the writer sets from the exposure's
        fields or with a structural card, or a value is not one a FITS
        card can hold.
    """
    reserved = mapped_keys()
    cards: list[Card] = []
    for key, value in metadata.items():
        upper = key.upper()
        if upper in reserved or _STRUCTURAL.match(upper):
            raise FormatError(
                f"metadata key {key!r} clashes with a card the writer sets"
            )
        cards.append((key, plain_value(key, value), ""))
    return cards


def plain_value(
    key: str, value: object, *, target: str = "written to a FITS card"
) -> bool | int | float | str | None:
    """Return ``value`` as a plain Python value a header card can hold.

    Numpy scalars become Python ones; None, bool, int, finite float and
    str pass.

    Raises
    ------
    FormatError
        If the value is anything else; the message names the key and what
        it could not be (``target``).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise FormatError(f"metadata {key!r}={value!r} cannot be {target}")


def read_metadata(header: fits.Header) -> dict[str, Any]:
    """Return the primary-header cards kept as metadata (see module doc)."""
    own = FORMAT_VERSION_KEY in header
    reserved = mapped_keys()
    metadata: dict[str, Any] = {}
    for card in header.cards:
        key = card.keyword
        upper = key.upper()
        if upper in reserved or _STRUCTURAL.match(upper):
            continue
        if own or upper.startswith(KEPT_FOREIGN_PREFIXES):
            value = card.value
            metadata[key] = None if value is fits.card.UNDEFINED else value
    return metadata
