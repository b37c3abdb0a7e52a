"""The any-survey mode on real pairs from other projects (skipped if absent).

``../shared/realdata`` holds ip_diffim's test pair (pixel-aligned afw
MaskedImages, no sky WCS, a noiseless-model template) and a DECam pair
from sfft (TPV WCS, no variance or mask, three usable stars). Each is
run as a user would, through the command line, and the difference is
checked to be noise: robust std of difference / sqrt(variance) over the
unflagged, undetected pixels within 0.05 of 1.
"""

from __future__ import annotations

import numpy as np
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
    assert "spatial orders 0/0" in stdout
    diff = read_dp1(out)
    z, pixels = robust_z(diff)
    assert pixels > 40_000
    assert z == pytest.approx(1.0, abs=Z_TOLERANCE)
    # Three stars are as many as the terms of orders 1/1: that solution
    # went through each star's own kernel and extrapolated it, leaving
    # the brightest star at -1197 sigma summed over its 15x15 box and
    # 4.4% of the pixels detected. A constant kernel subtracts it.
    assert diff.metadata["RECREATE FALLBACKS"] == (
        "spatial orders 1/1, spatial orders 0/1, spatial orders 0/0"
    )
    assert _box_sum_in_sigma(diff, 57, 180) == pytest.approx(0.0, abs=400.0)
    assert _detected_fraction(diff) < 0.025
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


def _box_sum_in_sigma(diff, x, y, half=7):
    """Sum of difference / sigma over a box around ``(x, y)``."""
    box = (slice(y - half, y + half + 1), slice(x - half, x + half + 1))
    return float(np.nansum(diff.image[box] / np.sqrt(diff.variance[box])))


def _detected_fraction(diff):
    """Fraction of the finite pixels in either detection plane."""
    bits = diff.mask_planes.value_of_present(("DETECTED", "DETECTED_NEGATIVE"))
    finite = np.isfinite(diff.image)
    return float(((diff.mask & bits) != 0)[finite].mean())


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
