"""The HTTP API against a real Redis, a real Dask cluster and the ci repo."""

from __future__ import annotations

import hashlib
import io

import pytest
from astropy.io import fits

from cache import JobStore
from recreate.butler import find_inputs, open_butler
from recreate.recreation import recreate_from_butler
from tests.support.products import chunk_keys
from tests.support.redis import stored_keys
from workers.tasks import RECOMPUTES_COUNTER


def diffim(http, key, **params):
    visit, detector = key
    return http.get(f"/api/v1/diffims/{visit}/{detector}", params=params)


def recomputes(control_redis) -> int:
    return JobStore(control_redis).counter(RECOMPUTES_COUNTER)


def test_a_miss_then_a_hit_with_identical_bytes(http, full_key, control_redis):
    first = diffim(http, full_key)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/fits"
    assert first.headers["x-cache"] == "miss"
    second = diffim(http, full_key)
    assert second.status_code == 200
    assert second.headers["x-cache"] == "hit"
    assert second.content == first.content
    digest = hashlib.sha256(first.content).hexdigest()
    assert first.headers["etag"] == second.headers["etag"] == f'"{digest}"'
    assert recomputes(control_redis) == 1


def test_the_fits_file_carries_the_recipe(http, full_key, ci_repo):
    response = diffim(http, full_key)
    with fits.open(io.BytesIO(response.content)) as hdulist:
        names = [hdu.name for hdu in hdulist]
        primary = hdulist[0].header
    assert names[1:4] == ["IMAGE", "MASK", "VARIANCE"]
    assert "DIFFIM_KERNEL" in names
    planes = primary["RECREATE PLANES SHA256"]
    assert response.headers["x-recreate-planes-sha256"] == planes
    found = find_inputs(open_butler(str(ci_repo.root)), *full_key)
    assert response.headers["x-recreate-inputs"].split(",") == list(
        found.dataset_ids
    )
    assert (
        response.headers["x-recreate-recipe-hash"]
        == primary["RECREATE RECIPE HASH"]
    )


def test_a_named_recipe_is_its_own_product(http, full_key):
    default = diffim(http, full_key)
    assert default.headers["x-recreate-recipe"] == "dp1"
    dp2 = http.get(
        f"/api/v1/diffims/{full_key[0]}/{full_key[1]}",
        params={"recipe": "dp2"},
    )
    assert dp2.status_code == 200, dp2.text
    assert dp2.headers["x-recreate-recipe"] == "dp2"
    assert dp2.headers["x-cache"] == "miss"
    assert dp2.headers["etag"] != default.headers["etag"]
    with fits.open(io.BytesIO(dp2.content)) as hdulist:
        assert hdulist[0].header["RECREATE RECIPE"] == "dp2"


def test_service_pixels_equal_a_local_recreation(http, full_key, ci_repo):
    response = diffim(http, full_key)
    local = recreate_from_butler(open_butler(str(ci_repo.root)), *full_key)
    assert response.headers["x-recreate-planes-sha256"] == (
        local.exposure.plane_hash()
    )


def test_if_none_match_gives_304(http, full_key):
    first = diffim(http, full_key)
    again = http.get(
        f"/api/v1/diffims/{full_key[0]}/{full_key[1]}",
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    stale = http.get(
        f"/api/v1/diffims/{full_key[0]}/{full_key[1]}",
        headers={"If-None-Match": '"0000"'},
    )
    assert stale.status_code == 200


def test_head_has_the_headers_and_no_body(http, full_key):
    got = diffim(http, full_key)
    head = http.head(f"/api/v1/diffims/{full_key[0]}/{full_key[1]}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["x-cache"] == "hit"
    assert int(head.headers["content-length"]) == len(got.content)


def test_formats_are_separate_products(http, full_key, tmp_path):
    import lsst.images as li

    dp1 = diffim(http, full_key)
    images = diffim(http, full_key, format="lsst-images")
    assert images.status_code == 200, images.text
    assert images.headers["etag"] != dp1.headers["etag"]
    assert images.headers["x-recreate-format"] == "lsst-images"
    path = tmp_path / "diffim.fits"
    path.write_bytes(images.content)
    diff = li.DifferenceImage.read(str(path))
    assert (
        diff.image.array.shape
        == fits.getdata(io.BytesIO(dp1.content), "IMAGE").shape
    )


BAD_INPUTS = [
    ("abc", "1", {}, 422, "invalid_parameter", ["path", "visit"]),
    ("1.5", "1", {}, 422, "invalid_parameter", ["path", "visit"]),
    ("-3", "1", {}, 422, "invalid_parameter", ["path", "visit"]),
    (
        "99999999999999999999",
        "1",
        {},
        422,
        "invalid_parameter",
        ["path", "visit"],
    ),
    ("{visit}", "x", {}, 422, "invalid_parameter", ["path", "detector"]),
    ("{visit}", "-1", {}, 422, "invalid_parameter", ["path", "detector"]),
    ("123", "1", {}, 404, "data_not_found", None),
    ("{visit}", "999", {}, 404, "data_not_found", None),
    (
        "{visit}",
        "{detector}",
        {"format": "tiff"},
        422,
        "invalid_parameter",
        ["query", "format"],
    ),
    (
        "{visit}",
        "{detector}",
        {"format": "dp1", "stretch": "asinh"},
        422,
        "invalid_parameter",
        ["query", "stretch"],
    ),
    (
        "{visit}",
        "{detector}",
        {"format": "png", "stretch": "log"},
        422,
        "invalid_parameter",
        ["query", "stretch"],
    ),
    (
        "{visit}",
        "{detector}",
        {"recipe": "dp9"},
        422,
        "invalid_parameter",
        ["query", "recipe"],
    ),
    (
        "{visit}",
        "{detector}",
        {"instrument": "HSC"},
        404,
        "data_not_found",
        None,
    ),
]


@pytest.mark.parametrize(
    ("visit", "detector", "params", "status", "code", "loc"), BAD_INPUTS
)
def test_bad_input_is_a_json_error_and_caches_nothing(
    http,
    full_key,
    cache_redis,
    control_redis,
    visit,
    detector,
    params,
    status,
    code,
    loc,
):
    visit = visit.format(visit=full_key[0])
    detector = detector.format(detector=full_key[1])
    response = http.get(f"/api/v1/diffims/{visit}/{detector}", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    (detail,) = response.json()["detail"]
    assert detail["type"] == code
    if loc is not None:
        assert detail["loc"] == loc
    bad = {**params, "visit": visit, "detector": detector}
    assert any(str(value) in detail["msg"] for value in bad.values())
    assert cache_redis.dbsize() == 0
    assert stored_keys(control_redis) == []


def test_no_template_coverage_is_422_remembered_and_caches_nothing(
    http, uncovered_key, cache_redis, control_redis
):
    before = _metric(http.get("/metrics").text, "recreate_failures_total")
    response = diffim(http, uncovered_key)
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["type"] == "no_template_overlap"
    assert str(uncovered_key[1]) in detail["msg"]
    assert cache_redis.dbsize() == 0
    # Only the failure is remembered, under the recipe's hash.
    (remembered,) = stored_keys(control_redis)
    assert remembered.startswith("recreate:failure:")
    again = diffim(http, uncovered_key)
    assert again.status_code == 422
    assert again.json() == response.json()
    # Answered from the negative cache: the pipeline did not run again.
    failures = _metric(http.get("/metrics").text, "recreate_failures_total")
    assert failures - before == 1.0


def test_a_corrupt_value_is_dropped_and_recomputed(
    http, full_key, cache_redis, control_redis
):
    first = diffim(http, full_key)
    chunks = chunk_keys(cache_redis, "dp1")
    assert chunks
    stored = cache_redis.get(chunks[0])
    cache_redis.setrange(chunks[0], len(stored) // 2, b"\x00garbage\x00")
    second = diffim(http, full_key)
    assert second.status_code == 200
    assert second.headers["x-cache"] == "miss"
    assert second.content == first.content
    assert recomputes(control_redis) == 2
    third = diffim(http, full_key)
    assert third.headers["x-cache"] == "hit"


def test_an_evicted_chunk_is_a_miss_not_a_short_file(
    http, full_key, cache_redis, control_redis
):
    first = diffim(http, full_key)
    chunks = chunk_keys(cache_redis, "dp1")
    cache_redis.unlink(chunks[-1])
    second = diffim(http, full_key)
    assert second.headers["x-cache"] == "miss"
    assert second.content == first.content
    assert recomputes(control_redis) == 2


def test_unknown_job_is_404(http):
    response = http.get("/api/v1/jobs/nope")
    assert response.status_code == 404
    assert response.json()["detail"][0]["type"] == "data_not_found"
    assert "nope" in response.json()["detail"][0]["msg"]


def test_health_reports_every_part(http):
    body = http.get("/api/v1/health").json()
    assert body["status"] == "ok"
    parts = body["components"]
    for name in ("cache", "control", "butler", "scheduler"):
        assert parts[name] == "ok", parts
    assert parts["workers"] == 2


def _metric(text, name):
    """Return the sum of a metric's series in a Prometheus exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + " ", name + "{"))
    )


def test_metrics_count_hits_misses_and_bytes(http, full_key):
    value = _metric

    before = http.get("/metrics").text
    first = diffim(http, full_key)
    diffim(http, full_key)
    after = http.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    for name, delta in (
        ("recreate_cache_hits_total", 1),
        ("recreate_cache_misses_total", 1),
        ("recreate_recomputes_total", 1),
        ("recreate_bytes_served_total", 2 * len(first.content)),
    ):
        assert value(text, name) - value(before, name) == delta, name
    assert "recreate_recompute_seconds_bucket" in text
    assert value(text, "recreate_desired_workers") >= 0
    assert value(text, "recreate_workers") == 2
    assert 'route="/api/v1/diffims/{visit}/{detector}"' in text


def test_openapi_document_describes_every_route(http):
    document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    route = paths["/api/v1/diffims/{visit}/{detector}"]
    assert set(route) >= {"get", "head"}
    responses = route["get"]["responses"]
    assert {"200", "202", "304", "404", "422", "503"} <= set(responses)
    assert "application/fits" in responses["200"]["content"]
    operation_ids = [
        operation["operationId"]
        for item in paths.values()
        for operation in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    for schema in ("ErrorModel", "JobModel", "HealthModel"):
        assert schema in document["components"]["schemas"]


def test_openapi_document_is_valid_openapi():
    from openapi_spec_validator import validate

    from workers.api import create_app
    from workers.settings import Settings

    document = create_app(Settings()).openapi()
    validate(document)
    assert "/api/v1/campaigns/{campaign_id}" in document["paths"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/jobs/a%01b", 404, "data_not_found"),
        ("GET", "/api/v1/jobs/%0A", 404, "data_not_found"),
        ("GET", "/nowhere", 404, "not_found"),
        ("POST", "/api/v1/health", 405, "method_not_allowed"),
        ("DELETE", "/api/v1/diffims/1/2", 405, "method_not_allowed"),
    ],
)
def test_odd_requests_get_the_documented_error(
    http, method, path, status, code
):
    response = http.request(method, path)
    assert response.status_code == status
    (detail,) = response.json()["detail"]
    assert detail["type"] == code
    assert detail["msg"].isprintable()
    assert response.headers["x-request-id"]


def test_a_body_over_the_limit_is_refused_unread(http, control_redis):
    big = b'{"name": "x", "keys": [' + b'{"visit": 1, "detector": 1},' * 80_000
    response = http.post(
        "/api/v1/campaigns",
        content=big,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["detail"][0]["type"] == "payload_too_large"
    assert stored_keys(control_redis) == []
    assert http.get("/api/v1/health").status_code == 200
