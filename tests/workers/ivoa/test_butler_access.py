"""Butler access: virtual difference_image datasets served by the service.

``recreate register`` writes the datasets into a copy of the ci
repository's registry; a real Butler client then reads them over HTTP
from the running service.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from recreate.virtual import DATASET_TYPE
from tests.workers.ivoa.support import planes, redis_is_empty
from workers.cli import main


@pytest.fixture
def registry_copy(ci_repo, tmp_path):
    """A repository sharing the ci repository's registry (not its files)."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("butler.yaml", "gen3.sqlite3"):
        shutil.copy(ci_repo.root / name, root / name)
    return root


def register(repo, url, *options):
    return main(["register", "--repo", str(repo), "--url", url, *options])


def test_butler_get_reads_a_recreated_image(
    api_url, http, registry_copy, full_key, cache_redis, control_redis, capsys
):
    from lsst.daf.butler import Butler

    visit, detector = full_key
    status = register(
        registry_copy,
        api_url,
        "--flavour",
        "dp2",
        "--run",
        "virtual/dp2",
        "--visits",
        str(visit),
    )
    assert status == 0
    assert "registered 9 difference_image datasets" in capsys.readouterr().out
    # Registering checked every location with a HEAD: nothing recreated.
    assert redis_is_empty(cache_redis)
    butler = Butler.from_config(
        str(registry_copy), collections=["virtual/dp2"]
    )
    dataset_type = butler.get_dataset_type(DATASET_TYPE)
    assert dataset_type.storageClass_name == "DifferenceImage"
    assert set(dataset_type.dimensions.required) == {
        "instrument",
        "visit",
        "detector",
    }
    uri = butler.getURI(DATASET_TYPE, visit=visit, detector=detector)
    assert str(uri) == (
        f"{api_url}/api/butler/lsst-images/{visit}/{detector}.fits"
    )
    image = butler.get(DATASET_TYPE, visit=visit, detector=detector)
    assert type(image).__name__ == "DifferenceImage"
    dp1 = http.get(f"/api/v1/diffims/{visit}/{detector}")
    np.testing.assert_array_equal(
        image.image.array, planes(dp1.content)["IMAGE"]
    )
    # Registering again adds nothing; another flavour conflicts by name.
    assert (
        register(
            registry_copy,
            api_url,
            "--flavour",
            "dp2",
            "--run",
            "virtual/dp2",
            "--visits",
            str(visit),
        )
        == 0
    )
    assert "registered 0" in capsys.readouterr().out
    assert register(registry_copy, api_url, "--flavour", "dp1") == 2
    assert "already registered" in capsys.readouterr().err


def test_dp1_datasets_point_at_the_product(
    api_url, http, registry_copy, full_key, capsys
):
    from lsst.daf.butler import Butler
    from lsst.resources import ResourcePath

    visit, detector = full_key
    assert register(registry_copy, api_url, "--visits", str(visit)) == 0
    butler = Butler.from_config(
        str(registry_copy), collections=["recreate/difference_image"]
    )
    assert (
        butler.get_dataset_type(DATASET_TYPE).storageClass_name == "ExposureF"
    )
    uri = butler.getURI(DATASET_TYPE, visit=visit, detector=detector)
    # What a Rubin stack's Butler reads with afw's formatter is the product.
    product = http.get(f"/api/v1/diffims/{visit}/{detector}").content
    assert ResourcePath(str(uri)).read() == product
    head = http.head(f"/api/butler/dp1/{visit}/{detector}.fits")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(product))


def test_bad_registrations_and_locations(api_url, http, registry_copy, capsys):
    assert register(registry_copy, "ftp://example") == 2
    assert "must be http(s)" in capsys.readouterr().err
    assert http.head("/api/butler/dp1/99/0.fits").status_code == 404
    assert http.get("/api/butler/png/1/0.fits").status_code == 404
    assert http.get("/api/butler/dp1/1/x.fits").status_code == 422
