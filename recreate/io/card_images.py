"""FITS header cards as astropy writes them, without astropy's objects.

A header card is 80 characters: the keyword, ``= ``, the value and an
optional `` / comment``. astropy builds, checks and formats a `Card`
object for each (tens of microseconds each), which is most of the time
of writing a stamp: its six headers hold about 250 cards.
`card_image` formats the plain cards here with astropy's own rules (a
standard keyword padded to 8, or ``HIERARCH name``; a string quoted and
padded to 8 inside its quotes and to 20 in all; booleans ``T``/``F``,
integers and floats right-aligned to 20, floats as Python's shortest
``repr`` with an upper-case exponent, cut to 20 characters; a HIERARCH
name longer than 8 characters with its value unpadded), and hands every
other card to astropy: a value of another type, a string that needs
``CONTINUE`` cards, a card over 80 characters, commentary keywords,
characters astropy refuses (it raises then, as the reference writer
does). The results are the same characters, which the tests check card
by card against astropy and file by file against the reference writer.
"""

from __future__ import annotations

import math
import re

from astropy.io import fits

from recreate.errors import FormatError

__all__ = [
    "BLOCK",
    "CARD",
    "astropy_image",
    "card_image",
    "header_block",
    "normalised_keyword",
]

#: Characters of a card.
CARD = 80
#: Bytes of a FITS block: headers and data are padded to whole blocks.
BLOCK = 2880
#: astropy's widest value field (strings, numbers right-aligned in it).
_VALUE_WIDTH = 20
#: Characters of a standard keyword.
_KEYWORD_WIDTH = 8

_STANDARD = re.compile(r"[A-Z0-9_-]{1,8}\Z")
# A HIERARCH name astropy keeps as it is: printable ASCII without '=',
# words separated by single spaces (astropy strips the ends).
_HIERARCH_NAME = re.compile(r"[!-<>-~]+(?: [!-<>-~]+)*\Z")
_PRINTABLE = re.compile(r"[ -~]*\Z")
_HIERARCH = "HIERARCH "
# Keywords astropy writes without a value indicator, or refuses.
_COMMENTARY = frozenset({"COMMENT", "HISTORY", "END", "CONTINUE"})
_END_CARD = "END".ljust(CARD)


def card_image(keyword: str, value: object, comment: str = "") -> str:
    """Return the card image astropy writes for a keyword, value, comment.

    Parameters
    ----------
    keyword
        A standard keyword, or ``HIERARCH name`` (see
        `recreate.io.cards.fits_keyword`).
    value
        The card's value.
    comment
        The card's comment; empty for none.

    Returns
    -------
    image
        80 characters (a multiple of 80 for astropy's ``CONTINUE``
        cards).

    Raises
    ------
    FormatError
        If astropy cannot make a card of them (e.g. a non-ASCII string).
    """
    image = _plain_image(keyword, value, comment)
    return astropy_image(keyword, value, comment) if image is None else image


def astropy_image(keyword: str, value: object, comment: str = "") -> str:
    """Return the image of the card astropy makes (the reference).

    Raises
    ------
    FormatError
        If astropy cannot make a card of them.
    """
    try:
        return fits.Card(keyword, value, comment).image
    except ValueError as exc:
        raise FormatError(
            f"cannot write card {keyword}={value!r} ({exc})"
        ) from exc


def normalised_keyword(keyword: str) -> str:
    """Return the keyword as astropy compares it (no HIERARCH, upper)."""
    return keyword.removeprefix(_HIERARCH).strip().upper()


def header_block(images: list[str]) -> bytes:
    """Return a header's bytes: its cards, ``END``, spaces to a block."""
    text = "".join(images) + _END_CARD
    return text.ljust(-(-len(text) // BLOCK) * BLOCK).encode("ascii")


def _plain_image(keyword: str, value: object, comment: str) -> str | None:
    """Return a plain card's image, or None (astropy formats the rest)."""
    text = _value_text(value)
    if text is None or not _PRINTABLE.match(comment):
        return None
    if _STANDARD.match(keyword):
        if keyword in _COMMENTARY:
            return None
        head = f"{keyword:{_KEYWORD_WIDTH}}= "
    elif keyword.startswith(_HIERARCH):
        name = keyword[len(_HIERARCH) :]
        if not _HIERARCH_NAME.match(name):
            return None
        head = f"{keyword} = "
        # astropy unpads the values of long HIERARCH names only.
        if len(name) > _KEYWORD_WIDTH:
            text = text.strip()
    else:
        return None
    image = f"{head}{text} / {comment}" if comment else head + text
    # Longer: astropy's CONTINUE cards, or its shortened HIERARCH form.
    return image.ljust(CARD) if len(image) <= CARD else None


def _value_text(value: object) -> str | None:
    """Return a plain value as astropy formats it, else None."""
    if isinstance(value, str):
        if not value or not _PRINTABLE.match(value):
            return None
        quoted = "'{}'".format(value.replace("'", "''").ljust(_KEYWORD_WIDTH))
        return quoted.ljust(_VALUE_WIDTH)
    if value is True or value is False:
        return ("T" if value else "F").rjust(_VALUE_WIDTH)
    if type(value) is int:
        return f"{value:>{_VALUE_WIDTH}d}"
    if type(value) is float and math.isfinite(value):
        return _float_text(value).rjust(_VALUE_WIDTH)
    return None


def _float_text(value: float) -> str:
    """Return Python's shortest float text, exponent upper, cut to 20."""
    text = str(value).replace("e", "E")
    if len(text) <= _VALUE_WIDTH:
        return text
    exponent = text.find("E")
    if exponent < 0:
        return text[:_VALUE_WIDTH]
    cut = _VALUE_WIDTH - (len(text) - exponent)
    return text[:cut] + text[exponent:]
