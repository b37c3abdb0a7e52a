"""SODA cutouts, sync and asynchronous (UWS), against the real service.

Cutout pixels are compared with the full product's, bit for bit; bad
input is a text/plain error with its DALI prefix and leaves Redis empty.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from astropy.io import fits
from pyvo.io.uws import parse_job

from recreate.butler import open_butler
from recreate.discovery import find_footprints
from recreate.preview import fits_to_png
from tests.support.png import read_png
from tests.workers.ivoa.support import (
    box_of,
    planes,
    product_window,
    redis_is_empty,
    xy0_of,
)

SYNC = "/api/cutout/sync"
JOBS = "/api/cutout/jobs"


@pytest.fixture(scope="module")
def footprint(ci_repo, full_key):
    footprints = find_footprints(open_butler(str(ci_repo.root)))
    return next(f for f in footprints if (f.visit, f.detector) == full_key)


def ivo_id(key):
    return f"ivo://recreate.lsst/repo?visit={key[0]}&detector={key[1]}"


def test_sync_stencils_cut_the_products_pixels(http, full_key, footprint):
    ra, dec = footprint.centre
    visit, detector = full_key
    full = http.get(f"/api/v1/diffims/{visit}/{detector}").content
    xy0 = xy0_of(full)
    d = 4 / 3600
    stencils = [
        {"CIRCLE": f"{ra} {dec} {d}"},
        {"POS": f"RANGE {ra - d} {ra + d} {dec - d} {dec + d}"},
        {"POLYGON": f"{ra} {dec} {ra + d} {dec} {ra} {dec + d}"},
        # The detector's own corner: clipped at its edges.
        {"CIRCLE": "{} {} {}".format(*footprint.vertices[0], d)},
    ]
    for stencil in stencils:
        response = http.get(SYNC, params={"ID": ivo_id(full_key), **stencil})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/fits"
        box = box_of(response)
        expected = product_window(full, box, xy0)
        got = planes(response.content)
        for name in ("IMAGE", "MASK", "VARIANCE"):
            assert got[name].tobytes() == expected[name].tobytes(), stencil
    # The corner stencil was clipped, not refused: part of a 41-pixel box.
    assert 0 < (box[2] - box[0]) < 41
    assert box[0] in (xy0[0], xy0[0] + full_shape(full)[1] - (box[2] - box[0]))


def full_shape(data):
    return planes(data)["IMAGE"].shape


def test_sync_detail_levels_formats_and_no_overlap(http, full_key, footprint):
    ra, dec = footprint.centre
    base = {"ID": ivo_id(full_key), "CIRCLE": f"{ra} {dec} {3 / 3600}"}
    image = http.post(SYNC, data={**base, "CUTOUTDETAIL": "Image"})
    with fits.open(io.BytesIO(image.content)) as hdulist:
        assert len(hdulist) == 1
        pixels = np.array(hdulist[0].data)
    masked = http.post(SYNC, data={**base, "cutoutdetail": "MaskedImage"})
    with fits.open(io.BytesIO(masked.content)) as hdulist:
        assert [h.name for h in hdulist] == [
            "PRIMARY",
            "IMAGE",
            "MASK",
            "VARIANCE",
        ]
        assert np.array(hdulist["IMAGE"].data).tobytes() == pixels.tobytes()
    png = http.get(SYNC, params={**base, "RESPONSEFORMAT": "image/png"})
    assert png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"].endswith(".png")
    # Drawn by the previews' renderer from the cutout's FITS (the whole
    # Exposure by default: its mask tinted, detections outlined).
    exposure = http.get(SYNC, params=base)
    assert png.content == fits_to_png(exposure.content)
    assert read_png(png.content).shape[:2] == pixels.shape
    grey = http.get(
        SYNC,
        params={**base, "RESPONSEFORMAT": "png", "CUTOUTDETAIL": "Image"},
    )
    assert grey.content == fits_to_png(image.content)
    by_data_id = http.get(
        SYNC,
        params={
            "VISIT": full_key[0],
            "DETECTOR": full_key[1],
            "CIRCLE": base["CIRCLE"],
            "CUTOUTDETAIL": "Image",
        },
    )
    assert by_data_id.content == image.content
    # A stencil that misses the detector: nothing to cut.
    away = http.get(
        SYNC, params={"ID": ivo_id(full_key), "CIRCLE": "200 10 0.01"}
    )
    assert away.status_code == 204
    assert away.content == b""


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"CIRCLE": "53 -28 0.01"}, 400, "UsageError: give ID"),
        ({"ID": "{id}"}, 400, "UsageError: give a stencil"),
        (
            {
                "ID": "ivo://recreate.lsst/repo?visit=99&detector=0",
                "CIRCLE": "53 -28 0.01",
            },
            404,
            "NotFoundFault: visit 99",
        ),
        (
            {
                "ID": "ivo://elsewhere/x?visit=1&detector=0",
                "CIRCLE": "53 -28 0.01",
            },
            404,
            "NotFoundFault: ID",
        ),
        (
            {"ID": "{id}", "POS": "CIRCLE 53 -28"},
            400,
            "UsageError: POS must be 3",
        ),
        (
            {"ID": "{id}", "POLYGON": "53 -28 53.1 -27.9 53.1 -28 53 -27.9"},
            400,
            "UsageError: POLYGON: the polygon (53 -28 53.1",
        ),
        (
            {"ID": "{id}", "CIRCLE": "53 -28 2"},
            400,
            "UsageError: the stencil spans 4",
        ),
        (
            {"ID": "{id}", "POS": "RANGE 0 +Inf -28 -27"},
            400,
            "UsageError: an open RANGE",
        ),
        (
            {
                "ID": "{id}",
                "CIRCLE": "53 -28 0.01",
                "RESPONSEFORMAT": "text/html",
            },
            400,
            "UsageError: RESPONSEFORMAT 'text/html'",
        ),
        (
            {"ID": "{id}", "CIRCLE": "53 -28 0.01", "CUTOUTDETAIL": "Raw"},
            400,
            "UsageError: CUTOUTDETAIL: unknown cutout detail",
        ),
        (
            {"ID": ["{id}", "{id}"], "CIRCLE": "53 -28 0.01"},
            400,
            "MultiValuedParamNotSupported: a synchronous cutout takes one ID",
        ),
        (
            {"ID": "{id}", "CIRCLE": ["53 -28 0.01", "53 -28 0.02"]},
            400,
            (
                "MultiValuedParamNotSupported: a synchronous cutout takes "
                "one stencil"
            ),
        ),
    ],
)
def test_bad_cutouts_are_text_errors_that_leave_nothing(
    http, cache_redis, control_redis, full_key, params, status, message
):
    def fill(value):
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value.replace("{id}", ivo_id(full_key))

    response = http.get(SYNC, params={k: fill(v) for k, v in params.items()})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(message), response.text
    assert redis_is_empty(cache_redis, control_redis)


def wait_final(http, url, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = parse_job(
            io.BytesIO(http.get(url, params={"WAIT": "5"}).content)
        )
        if job.phase in ("COMPLETED", "ERROR", "ABORTED"):
            return job
    msg = f"{url} did not finish"
    raise AssertionError(msg)


def test_an_async_job_gives_one_result_per_combination(
    http, full_key, other_full_key, footprint
):
    ra, dec = footprint.centre
    circles = [f"{ra} {dec} {3 / 3600}", "200 10 0.01"]
    created = http.post(
        JOBS,
        data={
            "ID": [ivo_id(full_key), ivo_id(other_full_key)],
            "CIRCLE": circles,
        },
    )
    assert created.status_code == 303
    url = created.headers["location"]
    pending = parse_job(io.BytesIO(http.get(url).content))
    assert pending.phase == "PENDING"
    assert http.get(f"{url}/phase").text == "PENDING"
    started = http.post(f"{url}/phase", data={"PHASE": "RUN"})
    assert started.status_code == 303
    job = wait_final(http, url)
    assert job.phase == "COMPLETED"
    assert [r.id_ for r in job.results] == ["0", "1", "2", "3"]
    first = http.get(job.results[0].href)
    sync = http.get(
        SYNC, params={"ID": ivo_id(full_key), "CIRCLE": circles[0]}
    )
    assert first.content == sync.content
    # The second stencil misses both detectors: empty results.
    assert http.get(job.results[1].href).status_code == 204
    assert http.get(job.results[3].href).status_code == 204
    listed = http.get(JOBS, params={"PHASE": "COMPLETED"})
    assert url.rsplit("/", 1)[-1] in listed.text
    params = http.get(f"{url}/parameters").text
    assert "200 10 0.01" in params
    assert http.get(f"{url}/executionduration").text == "3600"
    deleted = http.delete(url)
    assert deleted.status_code == 303
    assert http.get(url).status_code == 404


def test_a_job_that_fails_says_why_and_aborts(
    http, cache_redis, control_redis
):
    created = http.post(
        JOBS,
        data={
            "ID": "ivo://recreate.lsst/repo?visit=99&detector=0",
            "CIRCLE": "53 -28 0.01",
            "PHASE": "RUN",
        },
    )
    url = created.headers["location"]
    job = wait_final(http, url)
    assert job.phase == "ERROR"
    assert http.get(f"{url}/error").text.startswith("NotFoundFault: visit 99")
    # A bad request makes no job at all.
    control_redis.flushall()
    bad = http.post(JOBS, data={"ID": "x", "CIRCLE": "53 -28 0.01"})
    assert bad.status_code == 400
    assert bad.text.startswith("UsageError: ID 'x'")
    too_many = http.post(
        JOBS,
        data={
            "ID": [
                f"ivo://recreate.lsst/repo?visit=1&detector={d}"
                for d in range(101)
            ],
            "CIRCLE": "53 -28 0.01",
        },
    )
    assert too_many.text.startswith("UsageError: 101 IDs")
    assert redis_is_empty(cache_redis, control_redis)
    assert http.get(f"{JOBS}/soda-0000").status_code == 404
    assert (
        http.post(f"{JOBS}/soda-0000/phase", data={"PHASE": "RUN"}).status_code
        == 404
    )


def test_a_pending_job_aborts_and_a_phase_must_be_known(http, full_key):
    created = http.post(
        JOBS, data={"ID": ivo_id(full_key), "POS": "CIRCLE 53 -28 0.01"}
    )
    url = created.headers["location"]
    assert (
        http.post(f"{url}/phase", data={"PHASE": "ABORT"}).status_code == 303
    )
    assert http.get(f"{url}/phase").text == "ABORTED"
    # An aborted job does not run again.
    http.post(f"{url}/phase", data={"PHASE": "RUN"})
    assert parse_job(io.BytesIO(http.get(url).content)).phase == "ABORTED"
    wrong = http.post(f"{url}/phase", data={"PHASE": "SUSPEND"})
    assert wrong.status_code == 400
    assert wrong.text.startswith("UsageError: PHASE must be RUN or ABORT")
    assert http.post(url, data={"ACTION": "DELETE"}).status_code == 303
    assert http.get(url).status_code == 404
