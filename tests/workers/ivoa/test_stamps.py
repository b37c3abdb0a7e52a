"""Light curves: stamps of one position over every epoch covering it."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from astropy.io import fits

from recreate.butler import open_butler
from recreate.discovery import covering, find_footprints
from recreate.preview.render import GAP
from tests.support.png import read_png
from tests.workers.ivoa.support import planes, redis_is_empty, xy0_of

STAMPS = "/api/v1/stamps"


@pytest.fixture(scope="module")
def position(ci_repo, full_key):
    footprints = find_footprints(open_butler(str(ci_repo.root)))
    return next(
        f for f in footprints if (f.visit, f.detector) == full_key
    ).centre


def finished(http, url, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = http.get(url).json()
        if job["phase"] in ("COMPLETED", "ERROR", "ABORTED"):
            return job
        time.sleep(0.2)
    msg = f"{url} did not finish"
    raise AssertionError(msg)


def test_a_light_curve_is_every_epoch_by_time(http, ci_repo, position):
    ra, dec = position
    created = http.post(STAMPS, json={"ra": ra, "dec": dec, "size": 21})
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"] == job["url"]
    expected = covering(open_butler(str(ci_repo.root)), ra, dec)
    assert [(e["visit"], e["detector"]) for e in job["epochs"]] == [
        (f.visit, f.detector) for f in expected
    ]
    assert job["progress"] == {"done": 0, "total": len(expected)}
    done = finished(http, job["url"])
    assert done["phase"] == "COMPLETED", done
    assert done["progress"]["done"] == len(expected)
    cube = http.get(done["results"]["fits"])
    assert cube.headers["content-type"] == "application/fits"
    with fits.open(io.BytesIO(cube.content)) as hdulist:
        table = hdulist["EPOCHS"].data
        kept = len(expected) - len(done["failed"])
        assert len(table) == kept
        assert list(table["MJD"]) == sorted(table["MJD"])
        first = done["epochs"][0]
        stamp = np.array(hdulist["IMAGE", 1].data)
        ltv = (
            -hdulist["IMAGE", 1].header["LTV1"],
            -hdulist["IMAGE", 1].header["LTV2"],
        )
    # The stamps were rendered from solutions: no full product was made
    # for them. The first stamp is the full product's pixels there.
    full = http.get(f"/api/v1/diffims/{first['visit']}/{first['detector']}")
    assert full.headers["x-cache"] == "miss"
    xy0 = xy0_of(full.content)
    rows = slice(ltv[1] - xy0[1], ltv[1] - xy0[1] + stamp.shape[0])
    cols = slice(ltv[0] - xy0[0], ltv[0] - xy0[0] + stamp.shape[1])
    assert (
        stamp.tobytes() == planes(full.content)["IMAGE"][rows, cols].tobytes()
    )
    assert stamp.shape == (21, 21)
    strip = http.get(done["results"]["png"])
    assert strip.headers["content-type"] == "image/png"
    # The previews' renderer, one 21-pixel tile per epoch kept.
    assert read_png(strip.content).shape == (21, kept * (21 + GAP) - GAP, 3)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"ra": 400, "dec": 0}, 422, "less than or equal to 360"),
        ({"ra": 10, "dec": 0, "size": 5000}, 422, "size 5000 is over"),
        ({"ra": 10, "dec": 0, "colour": "red"}, 422, "Extra inputs"),
        ({"ra": 10, "dec": 0}, 404, "no recreatable difference image covers"),
        (
            {"ra": 10, "dec": 0, "time_min": 5, "time_max": 4},
            422,
            "time_min 5",
        ),
    ],
)
def test_bad_light_curves_leave_nothing(
    http, cache_redis, control_redis, body, status, message
):
    response = http.post(STAMPS, json=body)
    assert response.status_code == status
    assert message in response.json()["detail"][0]["msg"]
    assert redis_is_empty(cache_redis, control_redis)


def test_a_band_with_no_epoch_and_an_unknown_job(http, position):
    ra, dec = position
    none = http.post(STAMPS, json={"ra": ra, "dec": dec, "band": "g"})
    assert none.status_code == 404
    assert http.get(f"{STAMPS}/stamps-0").status_code == 404
    assert http.get(f"{STAMPS}/other").status_code == 404
