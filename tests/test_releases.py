"""Both recipes end to end through a DP2-like Butler repository.

DP2 stores its visit images as ``lsst.images`` VisitImages; its
repository's recipe is then ``dp2`` unless a request names another.
"""

from __future__ import annotations

import lsst.images as li
import numpy as np
import pytest
from astropy.io import fits

from recreate.butler import find_inputs, open_butler
from recreate.recreation import recipe_config, request_recipe
from tests.conftest import CI_SEED
from tests.support.releases import dp2_copy
from tests.support.service import key_with_coverage
from workers.cli import main


@pytest.fixture(scope="module")
def key(ci_repo):
    return key_with_coverage(ci_repo, 1.0, 2.0, detector=4)


@pytest.fixture(scope="module")
def dp2_repo(ci_repo, key, tmp_path_factory):
    root = tmp_path_factory.mktemp("dp2") / "repo"
    source = open_butler(str(ci_repo.root))
    return dp2_copy(source, root, CI_SEED, [key])


def test_dp2_repository_has_dp2s_storage_classes(dp2_repo):
    butler = open_butler(str(dp2_repo))
    types = {
        t.name: t.storageClass_name
        for t in butler.registry.queryDatasetTypes()
    }
    assert types["visit_image"] == "VisitImage"
    assert types["template_coadd"] == "ExposureF"
    assert types["difference_image"] == "DifferenceImage"


def test_repository_recipe_follows_its_release(ci_repo, dp2_repo, key):
    dp1_found = find_inputs(open_butler(str(ci_repo.root)), *key)
    dp2_found = find_inputs(open_butler(str(dp2_repo)), *key)
    assert dp2_found.visit_image.storage_class == "VisitImage"
    assert recipe_config(dp1_found).recipe == "dp1"
    assert recipe_config(dp2_found).recipe == "dp2"
    assert recipe_config(dp2_found, "dp1").recipe == "dp1"
    # The recipe is in the recipe, hence in the cache key.
    default = request_recipe(dp2_found)
    named = request_recipe(dp2_found, recipe="dp1")
    assert default["recipe"] == "dp2"
    assert named["recipe"] == "dp1"
    assert default["config_hash"] != named["config_hash"]
    # The same visit image, read from either release's file.
    assert dp1_found.visit_image.dataset_id != dp2_found.visit_image.dataset_id


@pytest.mark.parametrize("recipe", [None, "dp1"])
def test_cli_get_recreates_through_a_dp2_repository(
    dp2_repo, key, tmp_path, capsys, recipe
):
    out = tmp_path / "diffim.fits"
    argv = ["get", *map(str, key), "--repo", str(dp2_repo), "-o", str(out)]
    if recipe is not None:
        argv += ["--recipe", recipe]
    assert main(argv) == 0
    expected = recipe or "dp2"
    assert f"recipe {expected}" in capsys.readouterr().out
    header = fits.getheader(out, 0)
    assert header["HIERARCH RECREATE RECIPE"] == expected
    with fits.open(out) as hdulist:
        image = hdulist["IMAGE"].data
        mask = hdulist["MASK"].data
        no_data = 1 << hdulist["MASK"].header["MP_NO_DATA"]
    flagged = (mask & no_data) != 0
    if expected == "dp2":
        # DP2 publishes 0, not NaN, where there is no data.
        assert np.all(image[flagged] == 0.0)
        assert "MP_HIGH_VARIANCE" in fits.getheader(out, "MASK")
    assert np.all(np.isfinite(image[~flagged]))


def test_cli_get_writes_dp2s_lossy16_difference_image(dp2_repo, key, tmp_path):
    out = tmp_path / "diffim.fits"
    argv = [
        "get",
        *map(str, key),
        "--repo",
        str(dp2_repo),
        "-o",
        str(out),
        "--format",
        "lsst-images",
        "--lossy16",
    ]
    assert main(argv) == 0
    image = li.DifferenceImage.read(str(out))
    assert image.kernel is not None
    assert len(image.templates) >= 1
    with fits.open(out, disable_image_compression=True) as hdulist:
        header = hdulist["IMAGE"].header
        assert header["ZCMPTYPE"] == "RICE_1"
        assert header["ZQUANTIZ"] == "SUBTRACTIVE_DITHER_2"
        assert 1 <= header["ZDITHER0"] <= 9999


def test_lossy16_needs_the_lsst_images_format(dp2_repo, key, tmp_path, capsys):
    out = tmp_path / "diffim.fits"
    argv = ["get", *map(str, key), "--repo", str(dp2_repo), "-o", str(out)]
    assert main([*argv, "--lossy16"]) == 2
    assert "--lossy16 needs --format lsst-images" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_status:
        main([*argv, "--recipe", "dp3"])
    assert exit_status.value.code == 2
    assert "invalid choice: 'dp3'" in capsys.readouterr().err
    assert not out.exists()
