"""Previews over HTTP, and the listings the viewer browses with.

The real API in a thread, real Redis, the session's Dask cluster and
``ci`` repository.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

from recreate.preview import preview_layout
from tests.support.png import read_png


def _visit_detectors(ci_repo, visit):
    return sorted(
        int(key.split("/")[1])
        for key in ci_repo.coverage
        if int(key.split("/")[0]) == visit
    )


def test_previews_are_cached_products_of_their_own(
    http, full_key, cache_redis
):
    visit, detector = full_key
    url = f"/api/v1/diffims/{visit}/{detector}"
    first = http.get(url, params={"format": "png"})
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png"
    assert first.headers["content-disposition"].startswith("inline;")
    assert first.headers["x-recreate-format"] == "png"
    rgb = read_png(first.content)
    again = http.get(url, params={"format": "png", "stretch": "zscale"})
    assert again.headers["x-cache"] == "hit"
    assert again.content == first.content
    asinh = http.get(url, params={"format": "png", "stretch": "asinh"})
    assert asinh.headers["x-cache"] == "miss"
    assert asinh.headers["x-recreate-format"] == "png-asinh"
    assert read_png(asinh.content).shape == rgb.shape
    assert asinh.content != first.content
    triplet = http.get(url, params={"format": "png-triplet"})
    assert triplet.status_code == 200
    height, width = rgb.shape[:2]
    layout = preview_layout((height, width), panels=3)
    assert read_png(triplet.content).shape == (*layout.size[::-1], 3)
    assert triplet.headers["etag"] != first.headers["etag"]


def test_visits_list_newest_first(http, ci_repo):
    response = http.get("/api/v1/visits")
    assert response.status_code == 200
    visits = response.json()["visits"]
    numbers = [v["visit"] for v in visits]
    expected = sorted({int(k.split("/")[0]) for k in ci_repo.coverage})
    assert numbers == expected[::-1]
    assert {v["band"] for v in visits} <= {"u", "g", "r", "i", "z", "y"}
    assert (
        http.get("/api/v1/visits", params={"limit": 1}).json()["visits"]
        == visits[:1]
    )
    bad = http.get("/api/v1/visits", params={"limit": 0})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "limit"]


def test_a_visit_lists_its_detectors_and_their_urls(http, ci_repo, full_key):
    visit, detector = full_key
    response = http.get(f"/api/v1/visits/{visit}")
    assert response.status_code == 200
    body = response.json()
    detectors = {d["detector"]: d for d in body["detectors"]}
    assert sorted(detectors) == _visit_detectors(ci_repo, visit)
    mine = detectors[detector]
    assert mine["triplet"].endswith("format=png-triplet")
    geometry = http.get(mine["geometry"]).json()
    assert mine["ra"] == np.float64(mine["ra"])
    # The region's centre and the WCS's agree to an arcsecond.
    assert abs(mine["ra"] - geometry["center"][0]) < 1 / 3600 / np.cos(
        np.radians(mine["dec"])
    )
    assert abs(mine["dec"] - geometry["center"][1]) < 1 / 3600


def test_unknown_or_malformed_visits_are_named(http):
    missing = http.get("/api/v1/visits/123")
    assert missing.status_code == 404
    assert "123" in missing.json()["detail"][0]["msg"]
    malformed = http.get("/api/v1/visits/abc")
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["path", "visit"]
    nothing = http.get("/api/v1/diffims/123/0/geometry")
    assert nothing.status_code == 404


def test_the_geometry_is_the_visit_wcs(http, full_key, cache_redis):
    visit, detector = full_key
    response = http.get(f"/api/v1/diffims/{visit}/{detector}/geometry")
    assert response.status_code == 200, response.text
    body = response.json()
    wcs = WCS(body["wcs"])
    height, width = body["shape"]
    ra, dec = wcs.all_pix2world([0, width - 1], [0, height - 1], 0)
    assert body["corners"][0] == [float(ra[0]), float(dec[0])]
    assert body["corners"][2] == [float(ra[1]), float(dec[1])]
    assert body["previews"]["png-triplet"]["panels"] == 3
    assert (
        body["previews"]["png"]["width"]
        == preview_layout((height, width)).size[0]
    )
    # Headers only: nothing was recreated, nothing cached.
    assert cache_redis.dbsize() == 0


def test_a_preview_of_a_cached_fits_is_rendered_to_the_same_bytes(
    http, full_key, cache_redis, control_redis
):
    visit, detector = full_key
    url = f"/api/v1/diffims/{visit}/{detector}"
    asinh = {"format": "png", "stretch": "asinh"}
    recreated = http.get(url, params=asinh)
    assert recreated.status_code == 200
    assert "x-recreate-rendered-from" not in recreated.headers
    for source in ("dp1", "dp1-compressed"):
        cache_redis.flushdb()
        control_redis.flushdb()
        assert http.get(url, params={"format": source}).status_code == 200
        rendered = http.get(url, params=asinh)
        assert rendered.headers["x-recreate-rendered-from"] == source
        assert rendered.headers["x-recreate-format"] == "png-asinh"
        assert rendered.content == recreated.content


def test_a_recreated_fits_has_its_preview_cached_beside_it(
    http, full_key, cache_redis, control_redis
):
    visit, detector = full_key
    url = f"/api/v1/diffims/{visit}/{detector}"
    alone = http.get(url, params={"format": "png"})
    assert alone.headers["x-cache"] == "miss"
    cache_redis.flushdb()
    control_redis.flushdb()
    assert http.get(url, params={"format": "dp1"}).status_code == 200
    beside = http.get(url, params={"format": "png"})
    assert beside.headers["x-cache"] == "hit"
    assert beside.content == alone.content
    # Not the other stretches: those render when asked for.
    asinh = http.get(url, params={"format": "png", "stretch": "asinh"})
    assert asinh.headers["x-cache"] == "miss"
