"""``recreate subtract``: output options, exit statuses, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from recreate.io import read_dp1
from tests.support.pairs import write_star_pair
from workers.cli import main


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_star_pair(tmp_path_factory.mktemp("pair"), psf=True)


def _run(capsys, *args):
    code = main(["subtract", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_uncompressed_by_default_and_decorrelated_psf_beside(
    pair, tmp_path, capsys
):
    plain, packed = tmp_path / "plain.fits", tmp_path / "packed.fits"
    code, out, _ = _run(capsys, *pair, "-o", plain, "--decorrelated-psf")
    assert code == 0
    assert out.startswith(f"wrote {plain} (dp1, recipe dp1)")
    code, _, _ = _run(
        capsys, *pair, "-o", packed, "--format", "dp1-compressed"
    )
    assert code == 0
    with fits.open(plain) as a, fits.open(packed) as b:
        assert not any(isinstance(h, fits.CompImageHDU) for h in a)
        assert any(isinstance(h, fits.CompImageHDU) for h in b)
        assert "DECORRELATED_PSF" not in b
        decorrelated = a["DECORRELATED_PSF"].data.astype(np.float64)
        science = a["PSF_GRID"].data.astype(np.float64)
    # The release's PSF stays the science PSF; the extra one is filtered.
    assert decorrelated.shape == science.shape
    assert decorrelated.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.abs(decorrelated - science).max() > 1e-4
    assert read_dp1(plain).plane_hash() == read_dp1(packed).plane_hash()


def test_the_recipe_named_is_the_one_run_and_recorded(pair, tmp_path, capsys):
    out = tmp_path / "dp2.fits"
    code, printed, _ = _run(capsys, *pair, "-o", out, "--recipe", "dp2")
    assert code == 0
    assert printed.startswith(f"wrote {out} (dp1, recipe dp2)")
    header = fits.getheader(out, 0)
    assert header["RECREATE RECIPE"] == "dp2"
    assert header["RECREATE ANYSURVEY"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--template-variance", "lots"], "template variance 'lots'"),
        (["--template-variance", "-1"], "template variance -1.0"),
        (["--variance-floor", "nan"], "variance floor nan"),
        (["--aligned"], "differs from the science shape"),
        (["--format", "lsst-images", "--decorrelated-psf"], "dp1 format"),
        (["--lossy16"], "--lossy16 needs --format lsst-images"),
    ],
)
def test_bad_options_are_one_line_and_status_2(
    pair, tmp_path, capsys, extra, message
):
    out = tmp_path / "out.fits"
    code, _, err = _run(capsys, *pair, "-o", out, *extra)
    assert code == 2
    assert err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()


#: Runs ``recreate subtract`` in a fresh interpreter; prints the exit
#: status and which heavy modules the command had loaded by then.
_FRESH_SUBTRACT = """
import json, sys
from workers.cli import main
status = main(sys.argv[1:])
heavy = ("numba", "scipy", "astropy.wcs", "pydantic_settings")
print(json.dumps([status, [m for m in heavy if m in sys.modules]]))
"""


@pytest.mark.parametrize("output_format", ["dp1", "dp1-compressed", "png"])
def test_lossy16_on_a_plain_format_is_refused_before_any_work(
    tmp_path, output_format
):
    # The inputs do not exist: any work at all would fail on them first.
    out = tmp_path / "out.fits"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _FRESH_SUBTRACT,
            "subtract",
            str(tmp_path / "no-science.fits"),
            str(tmp_path / "no-template.fits"),
            "-o",
            str(out),
            "--format",
            output_format,
            "--lossy16",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    status, loaded = json.loads(done.stdout.splitlines()[-1])
    assert status == 2
    assert done.stderr == (
        "recreate: error: --lossy16 needs --format lsst-images, not "
        f"{output_format!r}\n"
    )
    # Refused before the pipeline was even imported.
    assert loaded == []
    assert not out.exists()
