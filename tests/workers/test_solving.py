"""``recreate solve``, ``recreate cutout`` and ``recreate get --solution``."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.io import read_dp1
from tests.support.service import key_with_coverage
from workers.cli import main


@pytest.fixture(scope="module")
def stored(ci_repo, tmp_path_factory):
    """A key, its solution file and its full product (``recreate get``)."""
    root = tmp_path_factory.mktemp("solving")
    visit, detector = key_with_coverage(ci_repo, 0.3, 0.8)
    repo = ["--repo", str(ci_repo.root)]
    key = [str(visit), str(detector)]
    solution, full = root / "solution.fits", root / "full.fits"
    assert main(["solve", *key, *repo, "-o", str(solution)]) == 0
    assert main(["get", *key, *repo, "-o", str(full)]) == 0
    return key, repo, solution, read_dp1(full)


def _exit_code(args):
    try:
        return main(args)
    except SystemExit as exit_:
        return exit_.code


def test_a_cutout_is_the_full_products_pixels(stored, tmp_path, capsys):
    key, repo, solution, full = stored
    out = tmp_path / "cutout.fits"
    args = ["cutout", *key, *repo, "--solution", str(solution)]
    assert (
        main([*args, "--box", "-6", "150", "40", "201", "-o", str(out)]) == 0
    )
    assert (
        "clipped to the detector: (0, 150, 40, 201)" in capsys.readouterr().err
    )
    region = read_dp1(out)
    assert region.xy0 == (0, 150)
    for plane in ("image", "variance", "mask"):
        want = getattr(full, plane)[150:201, 0:40]
        assert getattr(region, plane).tobytes() == want.tobytes()
    ra, dec = full.wcs.pixel_to_world_values(0, 150)
    assert np.allclose(region.wcs.world_to_pixel_values(ra, dec), 0.0)


def test_a_cutout_around_a_sky_position(stored, tmp_path):
    key, repo, solution, full = stored
    ra, dec = full.wcs.pixel_to_world_values(200.2, 100.4)
    out = tmp_path / "stamp.fits"
    args = ["cutout", *key, *repo, "--solution", str(solution)]
    center = ["--center", str(ra), str(dec), "--size", "21"]
    assert main([*args, *center, "-o", str(out)]) == 0
    stamp = read_dp1(out)
    assert stamp.xy0 == (190, 90)
    assert stamp.image.tobytes() == full.image[90:111, 190:211].tobytes()


def test_get_with_a_solution_is_the_product_without_refitting(
    stored, tmp_path
):
    key, repo, solution, full = stored
    out = tmp_path / "again.fits"
    args = ["get", *key, *repo, "--solution", str(solution), "-o", str(out)]
    assert main(args) == 0
    again = read_dp1(out)
    assert again.plane_hash() == full.plane_hash()
    hash_card = "RECREATE PLANES SHA256"
    assert again.metadata[hash_card] == full.metadata[hash_card]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--box", "1000", "1000", "1010", "1010"], "is outside the detector"),
        (["--box", "10", "10", "10", "20"], "holds no pixel"),
        (
            ["--box", "0", "0", "300", "300", "--max-size", "256"],
            "at most 256 px a side",
        ),
        (["--center", "10.0", "-5.0"], "--center needs --size"),
    ],
)
def test_bad_boxes_are_one_line_errors(
    stored, tmp_path, capsys, extra, message
):
    key, repo, solution, _ = stored
    out = tmp_path / "never.fits"
    args = ["cutout", *key, *repo, "--solution", str(solution), "-o", str(out)]
    assert _exit_code([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_corrupt_or_foreign_solutions_are_one_line_errors(
    ci_repo, stored, tmp_path, capsys
):
    key, repo, solution, _ = stored
    corrupt = tmp_path / "corrupt.fits"
    data = bytearray(solution.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    other = key_with_coverage(ci_repo, 1.0, 2.0, detector=4)
    cases = [
        (key, corrupt, "checksum mismatch"),
        ([str(v) for v in other], solution, "differs: the solution's"),
        (key, solution, "recipe 'dp1', not 'dp2'"),
    ]
    for index, (which, path, message) in enumerate(cases):
        out = tmp_path / f"never{index}.fits"
        args = ["cutout", *which, *repo, "--solution", str(path)]
        args += ["--box", "0", "0", "5", "5", "-o", str(out)]
        if "dp2" in message:
            args += ["--recipe", "dp2"]
        assert _exit_code(args) == 2
        err = capsys.readouterr().err
        assert message in err, err
        assert "Traceback" not in err
        assert not out.exists()
