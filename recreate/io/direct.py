"""Difference images in the DP1 layout, written without astropy's HDUs.

`recreate.io.difference.difference_bytes` builds astropy HDUs and writes
them: for a stamp that is about 20 ms, nearly all of it astropy making,
checking and formatting some 250 header cards, when the pixels take
microseconds. `direct_difference_bytes` writes the same file, byte for
byte, from the same cards (`recreate.io.dp1.dp1_cards`, the PSF grid's
and the kernel's), formatted by `recreate.io.card_images`, and the
planes as big-endian bytes, each header and data unit padded to whole
2880-byte blocks as astropy pads them. It writes uncompressed planes
only; where a file would need anything astropy does beyond what is
written here (another pixel type, a keyword astropy would strip or
merge, an empty plane, an empty kernel), it returns None and the caller
uses the reference writer. The tests compare both writers' bytes on
rendered regions of every recipe and on made-up exposures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from recreate.exposure import Exposure
from recreate.io.card_images import (
    BLOCK,
    card_image,
    header_block,
    normalised_keyword,
)
from recreate.io.cards import Card, fits_keyword
from recreate.io.difference import (
    KERNEL_COLUMN,
    KERNEL_EXTNAME,
    kernel_text,
)
from recreate.io.dp1 import PLANES, dp1_cards, geometry_cards
from recreate.io.geometry import wcs_header
from recreate.io.psfgrid import PSF_GRID_EXTNAME, psf_grid_cards

__all__ = ["direct_difference_bytes"]

#: FITS types of the planes this writer handles, by numpy dtype.
_BITPIX = {np.dtype(np.float32): -32, np.dtype(np.int32): 32}
#: Keywords astropy strips from a header it is given, or merges with the
#: cards it writes itself, or writes without a value: never direct.
_HANDLED_BY_ASTROPY = re.compile(
    r"(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|GROUPS|BSCALE|"
    r"BZERO|TFIELDS|THEAP|T(FORM|SCAL|ZERO|NULL|TYPE|UNIT|DISP|DIM|BCOL)\d+|"
    r"COMMENT|HISTORY|CONTINUE|END|)\Z"
)


class _UnhandledError(Exception):
    """A file this writer leaves to astropy."""


def direct_difference_bytes(
    exposure: Exposure, kernel: dict[str, Any]
) -> bytes | None:
    """Return the bytes of the uncompressed DP1-layout difference image.

    The bytes `recreate.io.difference.difference_bytes` gives with
    ``compress=False``.

    Parameters
    ----------
    exposure
        The difference image.
    kernel
        The solved kernel as a JSON-able dict.

    Returns
    -------
    data
        The file, or None where this writer leaves it to astropy.

    Raises
    ------
    FormatError
        As the reference writer raises it (a card it cannot write).
    """
    cards = dp1_cards(exposure)
    try:
        geometry = _geometry_images(exposure)
        parts: list[bytes | memoryview] = [
            _header(_primary_structure(), cards.primary)
        ]
        for label in PLANES:
            data = np.asarray(getattr(exposure, label.lower()))
            structure = _image_structure(data)
            parts.append(_header(structure, cards.planes[label], geometry))
            parts += _data(data)
        grid = None if exposure.psf is None else exposure.psf.grid
        if grid is not None:
            parts += _psf_grid(grid.images, psf_grid_cards(grid))
        parts += _kernel(kernel_text(kernel))
    except _UnhandledError:
        return None
    return b"".join(parts)


def _primary_structure() -> list[Card]:
    """Return the cards astropy puts first in a primary header."""
    return [
        ("SIMPLE", True, "conforms to FITS standard"),
        ("BITPIX", 8, "array data type"),
        ("NAXIS", 0, "number of array dimensions"),
        ("EXTEND", True, ""),
    ]


def _image_structure(data: npt.NDArray[Any]) -> list[Card]:
    """Return the cards astropy puts first in an image extension."""
    bitpix = _BITPIX.get(data.dtype)
    if bitpix is None or data.size == 0:
        raise _UnhandledError
    axes = [
        (f"NAXIS{axis}", length, "")
        for axis, length in enumerate(reversed(data.shape), start=1)
    ]
    return [
        ("XTENSION", "IMAGE", "Image extension"),
        ("BITPIX", bitpix, "array data type"),
        ("NAXIS", data.ndim, "number of array dimensions"),
        *axes,
        ("PCOUNT", 0, "number of parameters"),
        ("GCOUNT", 1, "number of groups"),
    ]


@dataclass(frozen=True)
class _Images:
    """Card images already made, and their keywords (normalised)."""

    images: list[str] = field(default_factory=list)
    keywords: frozenset[str] = frozenset()


def _header(
    structure: list[Card], cards: list[Card], after: _Images | None = None
) -> bytes:
    """Return a header: astropy's structure, our cards, images after.

    ``cards`` are written as `recreate.io.cards.add_cards` appends them
    (HIERARCH where not standard, then without a comment); ``after``
    are card images already made (the geometry's).
    """
    after = after or _Images()
    images = [card_image(*card) for card in structure]
    keywords = set(after.keywords)
    for key, value, comment in cards:
        keyword = fits_keyword(key)
        normal = normalised_keyword(keyword)
        # astropy would strip or merge such a card: leave the file to it.
        if normal in keywords or _HANDLED_BY_ASTROPY.match(normal):
            raise _UnhandledError
        keywords.add(normal)
        note = "" if keyword.startswith("HIERARCH") else comment
        images.append(card_image(keyword, value, note))
    return header_block([*images, *after.images])


def _geometry_images(exposure: Exposure) -> _Images:
    """Return the images of the sky WCS and xy0 cards of every plane.

    The WCS cards are astropy's (``WCS.to_header``: wcslib's text),
    checked as the reference writer checks them before writing.
    """
    images = []
    keywords = set()
    if exposure.wcs is not None:
        for card in wcs_header(exposure.wcs).cards:
            card.verify("exception")
            keywords.add(normalised_keyword(card.keyword))
            images.append(card.image)
    for key, value, comment in geometry_cards(exposure):
        keywords.add(normalised_keyword(key))
        images.append(card_image(key, value, comment))
    if len(keywords) != len(images) or any(
        _HANDLED_BY_ASTROPY.match(keyword) for keyword in keywords
    ):
        raise _UnhandledError
    return _Images(images, frozenset(keywords))


def _data(data: npt.NDArray[Any]) -> list[bytes | memoryview]:
    """Return a data unit: the array big-endian, zeros to a block."""
    big = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder(">"))
    size = big.nbytes
    return [memoryview(big).cast("B"), bytes(-size % BLOCK)]


def _psf_grid(
    images: npt.NDArray[Any], cards: list[Card]
) -> list[bytes | memoryview]:
    """Return the ``PSF_GRID`` extension (EXTNAME last, as astropy adds)."""
    data = np.asarray(images, dtype=np.float32)
    named = [*cards, ("EXTNAME", PSF_GRID_EXTNAME, "extension name")]
    return [_header(_image_structure(data), named), *_data(data)]


def _kernel(text: str) -> list[bytes | memoryview]:
    """Return the kernel's one-row table of one ``nA`` column."""
    if not text or not text.isascii():
        raise _UnhandledError
    width = len(text)
    structure: list[Card] = [
        ("XTENSION", "BINTABLE", "binary table extension"),
        ("BITPIX", 8, "array data type"),
        ("NAXIS", 2, "number of array dimensions"),
        ("NAXIS1", width, "length of dimension 1"),
        ("NAXIS2", 1, "length of dimension 2"),
        ("PCOUNT", 0, "number of group parameters"),
        ("GCOUNT", 1, "number of groups"),
        ("TFIELDS", 1, "number of table fields"),
        ("TTYPE1", KERNEL_COLUMN, ""),
        ("TFORM1", f"{width}A", ""),
    ]
    cards: list[Card] = [
        ("EXTNAME", KERNEL_EXTNAME, ""),
        ("EXTTYPE", KERNEL_EXTNAME, ""),
    ]
    comment = card_image("COMMENT", "Solved PSF-matching kernel (recreate)")
    row = text.encode("ascii")
    return [
        _header(structure, cards, _Images([comment])),
        row,
        bytes(-width % BLOCK),
    ]
