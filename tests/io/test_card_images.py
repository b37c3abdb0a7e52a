"""Card images formatted here are astropy's, character for character."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from astropy.io import fits

from recreate.errors import FormatError
from recreate.io.card_images import BLOCK, CARD, card_image, header_block

KEYWORDS = [
    "A",
    "KEY",
    "ABCDEFGH",
    "DATE-AVG",
    "HIERARCH X",
    "HIERARCH SHORT",
    "HIERARCH MP_DETECTED",
    "HIERARCH RECREATE PHOTOCALIB NJY_PER_ELECTRON",
    "HIERARCH lower case key",
    "HIERARCH LSST BUTLER DATAID PHYSICAL_FILTER",
]
COMMENTS = ["", "a comment", "x" * 70]


def _values():
    rng = np.random.default_rng(11)
    floats = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        1.0 / 3.0,
        1e-5,
        1e16,
        1e22,
        5e-324,
        1.7976931348623157e308,
        123456789012345.67,
        -2.0937677806993e-07,
        53.16247060337745,
    ]
    floats += [
        float(sign * 10.0 ** rng.uniform(-300, 300))
        for sign in (1, -1)
        for _ in range(12)
    ]
    ints = [0, 1, -1, 31, 2024110900001, 2**63, -(10**25)]
    strings = [
        "a",
        "abcdefgh",
        "abcdefghi",
        "it's",
        "''",
        "  leading",
        "trailing  ",
        "R22_S01",
        "2024-11-09T02:24:00.000",
        "01a24cac-b58d-7b28-a329-34633c12a26e",
        "a" * 60,
        "b" * 70,
        "f5d37cbc891b5fe9f942329ab3ef5be8c2324bc1f81ff4cf1229c9b18da13b58",
        "",
    ]
    others = [True, False, None, np.float32(1.1), np.int64(5), np.bool_(1)]
    return [*floats, *ints, *strings, *others]


def _astropy(keyword, value, comment):
    try:
        return fits.Card(keyword, value, comment).image
    except ValueError:
        return None


def test_every_card_is_astropys_image():
    for keyword, value, comment in itertools.product(
        KEYWORDS, _values(), COMMENTS
    ):
        want = _astropy(keyword, value, comment)
        assert want is not None, (keyword, value, comment)
        got = card_image(keyword, value, comment)
        assert got == want, (keyword, value, comment)
        assert len(got) % CARD == 0


def test_plain_cards_need_no_astropy_card(monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("astropy's Card was asked for a plain card")

    monkeypatch.setattr(fits, "Card", refused)
    assert card_image("EXPTIME", 30.0, "exposure time").startswith(
        "EXPTIME =                 30.0 / exposure time"
    )
    assert card_image("HIERARCH RECREATE N INPUTS", 7, "") == (
        "HIERARCH RECREATE N INPUTS = 7".ljust(CARD)
    )
    assert card_image("HIERARCH SHORT", "x", "") == (
        "HIERARCH SHORT = 'x       '           ".ljust(CARD)
    )


@pytest.mark.parametrize(
    ("keyword", "value", "comment"),
    [
        ("KEY", "caf\u00e9", ""),
        ("KEY", float("nan"), ""),
        ("KEY", 1, "caf\u00e9"),
        ("HIERARCH a=b", 1, ""),
    ],
)
def test_a_card_astropy_refuses_is_a_format_error(keyword, value, comment):
    with pytest.raises(FormatError, match="cannot write card"):
        card_image(keyword, value, comment)


def test_a_header_ends_and_fills_its_blocks():
    images = [card_image("KEY", index, "") for index in range(40)]
    block = header_block(images)
    assert len(block) == 2 * BLOCK
    text = block.decode("ascii")
    assert text[40 * CARD :].startswith("END" + " " * 77)
    assert text[41 * CARD :].strip() == ""
    assert fits.Header.fromstring(text)["KEY"] == 0
