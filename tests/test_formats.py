"""The format registry, and what light entry points must not import."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recreate.errors import InvalidRequestError
from recreate.formats import (
    DEFAULT_FORMAT,
    FORMATS,
    check_write_options,
    companions,
    format_names,
    get_format,
    stretched_format,
)
from workers.cli import _build_parser

HEAVY = ("numba", "lsst.daf.butler", "lsst.images")


FITS_FORMATS = ("dp1", "dp1-compressed", "dp1-decorrelated-psf", "lsst-images")
PNG_FORMATS = ("png", "png-asinh", "png-triplet", "png-triplet-asinh")


def test_every_format_is_complete():
    assert DEFAULT_FORMAT in FORMATS
    assert format_names() == FITS_FORMATS + PNG_FORMATS
    for name, fmt in FORMATS.items():
        assert fmt.name == name
        media, suffix = (
            ("image/png", ".png")
            if name in PNG_FORMATS
            else ("application/fits", ".fits")
        )
        assert (fmt.media_type, fmt.suffix) == (media, suffix)
        assert fmt.description


def test_formats_pickle_and_compare_equal_after():
    for fmt in FORMATS.values():
        assert pickle.loads(pickle.dumps(fmt)) == fmt  # noqa: S301 - ours


def test_the_zscale_preview_is_cached_beside_fits_products():
    for name in ("dp1", "dp1-compressed"):
        assert companions(name) == (FORMATS["png"],)
    for name in ("lsst-images", *PNG_FORMATS):
        assert companions(name) == ()
    assert FORMATS["png-asinh"].sources == ("dp1", "dp1-compressed")
    assert FORMATS["png-triplet"].sources == ()
    with pytest.raises(InvalidRequestError, match="not rendered"):
        FORMATS["dp1"].from_source(b"")


def test_a_stretch_names_a_preview_format():
    assert stretched_format("png", None) == "png"
    assert stretched_format("png", "zscale") == "png"
    assert stretched_format("png", "asinh") == "png-asinh"
    assert stretched_format("png-triplet", "asinh") == "png-triplet-asinh"
    assert stretched_format("dp1", None) == "dp1"
    with pytest.raises(InvalidRequestError, match=r"not to 'dp1'"):
        stretched_format("dp1", "asinh")
    with pytest.raises(InvalidRequestError, match=r"'log'"):
        stretched_format("png", "log")


def test_an_unknown_format_names_itself_and_the_choices():
    with pytest.raises(InvalidRequestError, match=r"'tiff'.*dp1-compressed"):
        get_format("tiff")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("dp1", {"lossy16": True}, "--lossy16 needs --format lsst-images"),
        (
            "lsst-images",
            {"decorrelated_psf": True},
            (
                "--decorrelated-psf needs a dp1 format (dp1, dp1-compressed),"
                " not 'lsst-images'"
            ),
        ),
    ],
)
def test_write_options_that_do_not_fit_the_format_are_refused(
    name, options, message
):
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        check_write_options(name, **options)


def test_write_options_that_fit_return_the_format():
    assert check_write_options("lsst-images", lossy16=True).name == (
        "lsst-images"
    )
    for name in ("dp1", "dp1-compressed"):
        assert check_write_options(name, decorrelated_psf=True).name == name


def test_the_cli_offers_exactly_the_registry():
    parser = _build_parser()
    for command in (
        ["get", "1", "2", "-o", "x"],
        ["subtract", "a", "b", "-o", "x"],
    ):
        args = parser.parse_args(command)
        assert args.format == DEFAULT_FORMAT
        for name in format_names():
            assert parser.parse_args([*command, "--format", name]).format == (
                name
            )
    prewarm = parser.parse_args(["prewarm", "--url", "u", "--visits", "1"])
    assert prewarm.format is None
    with pytest.raises(SystemExit):
        parser.parse_args(["get", "1", "2", "-o", "x", "--format", "tiff"])


#: Prints which of HEAVY the code before it loaded.
REPORT = f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"

#: Runs the ``recreate`` command as its console script does.
RECREATE = """
from workers.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
"""


def _loaded_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; say what heavy modules it loads."""
    probe = f"import sys, json\n{code}\n{REPORT}"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    ).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import workers.settings",
        "from workers.cli import _build_parser; _build_parser()",
        RECREATE.format(argv=["--help"]),
        RECREATE.format(argv=["get", "--help"]),
        RECREATE.format(argv=["subtract", "--help"]),
    ],
)
def test_settings_and_help_load_no_heavy_module(code):
    assert _loaded_after(code) == dict.fromkeys(HEAVY, False)


def test_a_plain_subtraction_loads_no_butler_and_no_lsst_images():
    # What `recreate subtract` imports (numba it needs).
    loaded = _loaded_after(
        "import recreate.recreation, recreate.writers, recreate.inputs"
    )
    assert loaded == {
        "numba": True,
        "lsst.daf.butler": False,
        "lsst.images": False,
    }
