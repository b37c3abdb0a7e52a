"""The any-survey mode on real pairs from other projects (skipped if absent).

``../shared/realdata`` holds ip_diffim's test pair (pixel-aligned afw
MaskedImages, no sky WCS, a noiseless-model template) and a DECam pair
from sfft (TPV WCS, no variance or mask, three usable stars). Each is
run as a user would, through the command line, and the difference is
checked to be noise: robust std of difference / sqrt(variance) over the
unflagged, undetected pixels within 0.05 of 1.
"""

from __future__ import annotations

import pytest

from recreate.io import read_dp1
from tests.support.pairs import robust_z
from workers.cli import main

Z_TOLERANCE = 0.05


def _run(capsys, *args):
    code = main(["subtract", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_decam_pair(realdata, tmp_path, capsys):
    folder = realdata / "decam_sfft"
    science, template = (
        folder / "DEC-OBS04a.mini.fits",
        folder / "DEC-OBS18a.mini.fits",
    )
    out = tmp_path / "decam.fits"
    code, stdout, _ = _run(capsys, science, template, "-o", out)
    assert code == 0
    assert "spatial orders 1/1" in stdout
    diff = read_dp1(out)
    z, pixels = robust_z(diff)
    assert pixels > 40_000
    assert z == pytest.approx(1.0, abs=Z_TOLERANCE)
    assert diff.metadata["RECREATE FALLBACKS"] == "spatial orders 1/1"
    # v29's orders with three stars: a singular system, refused in one
    # line (it used to be written, with "-1.027e+20 > 1.000e+10").
    code, stdout, err = _run(
        capsys,
        science,
        template,
        "-o",
        out,
        "--overwrite",
        "--no-spatial-fallback",
    )
    assert code == 2
    assert stdout == ""
    assert err.count("\n") == 1
    assert err.startswith("recreate: error: kernel solution too thin: 3 stars")
    assert "--allow-ill-conditioned" in err


def test_ip_diffim_aligned_model_template(realdata, tmp_path, capsys):
    folder = realdata / "lsst_ip_diffim"
    science, template = folder / "scienceMI.fits", folder / "templateMI.fits"
    out = tmp_path / "ipd.fits"
    code, _, err = _run(capsys, science, template, "-o", out)
    assert code == 2
    assert err.count("\n") == 1
    assert "no celestial WCS" in err
    assert "--aligned" in err
    code, stdout, _ = _run(capsys, science, template, "-o", out, "--aligned")
    assert code == 0
    assert "template looks noiseless" in stdout
    diff = read_dp1(out)
    assert diff.wcs is None
    assert diff.metadata["RECREATE TEMPLATE VARIANCE"] == "keep"
    assert diff.metadata["RECREATE DETECTED BEFORE SCALEVAR"] == "science"
    z, pixels = robust_z(diff)
    assert pixels > 20_000
    assert z == pytest.approx(1.0, abs=Z_TOLERANCE)
