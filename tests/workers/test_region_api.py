"""Regions and solutions over HTTP: the same pixels, one solve, durable.

The real API (a thread), real Redis, a real Dask cluster (threads) and
the ci repository. After each test both Redis instances are flushed, the
solution store is emptied and the API forgets the solutions it kept
(`tests.workers.conftest.http`): every test starts unsolved.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from astropy.io import fits
from astropy.wcs import WCS

from cache import JobStore, RedisSolutions
from recreate.client import Client
from recreate.errors import InvalidRequestError
from recreate.preview.render import GAP
from recreate.solution import solution_from_bytes
from tests.support.png import read_png
from tests.support.redis import stored_keys
from tests.support.service import running_api
from tests.workers.test_api import _metric
from workers.cli import main
from workers.solution_tasks import SOLVES_COUNTER

PLANES = ("IMAGE", "MASK", "VARIANCE")


def diffim(http, key, **params) -> httpx.Response:
    visit, detector = key
    return http.get(f"/api/v1/diffims/{visit}/{detector}", params=params)


def solution(http, key, **kwargs) -> httpx.Response:
    visit, detector = key
    return http.get(f"/api/v1/solutions/{visit}/{detector}", **kwargs)


def solves(control_redis) -> int:
    return JobStore(control_redis).counter(SOLVES_COUNTER)


def stored_files(settings) -> list[Path]:
    return sorted(Path(settings.solution_store).rglob("*.fits"))


def plane_hashes(data: bytes, box=None, xy0=(0, 0)) -> dict[str, str]:
    """Return the SHA-256 of each plane (of ``box`` only, if given)."""
    hashes = {}
    with fits.open(io.BytesIO(data)) as hdulist:
        for name in PLANES:
            plane = np.ascontiguousarray(hdulist[name].data)
            if box is not None:
                x0, y0, x1, y1 = box
                plane = np.ascontiguousarray(
                    plane[y0 - xy0[1] : y1 - xy0[1], x0 - xy0[0] : x1 - xy0[0]]
                )
            hashes[name] = hashlib.sha256(
                plane.dtype.str.encode()
                + repr(plane.shape).encode()
                + plane.tobytes()
            ).hexdigest()
    return hashes


def frame(data: bytes) -> tuple[tuple[int, int], tuple[int, int], WCS]:
    """Return a DP1 file's xy0, its (height, width) and its pixel WCS."""
    with fits.open(io.BytesIO(data)) as hdulist:
        header = hdulist["IMAGE"].header
        xy0 = (-int(header["LTV1"]), -int(header["LTV2"]))
        return xy0, hdulist["IMAGE"].data.shape, WCS(header)


def served_box(response) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in response.headers["x-recreate-box"].split(","))


def boxes_to_try(xy0, shape, rng) -> list[tuple[int, int, int, int]]:
    """Random boxes, boxes on each edge and corner, 1x1, the whole."""
    (x0, y0), (height, width) = xy0, shape
    x1, y1 = x0 + width, y0 + height
    boxes = [
        (x0, y0, x0 + 1, y0 + 1),
        (x1 - 1, y1 - 1, x1, y1),
        (x0, y0 + 100, x0 + 51, y0 + 151),
        (x1 - 51, y0 + 7, x1, y0 + 58),
        (x0 + 33, y0, x0 + 84, y0 + 20),
        (x0 + 200, y1 - 51, x0 + 251, y1),
        (x0, y0, x1, y1),
    ]
    for _ in range(6):
        w, h = (int(v) for v in rng.integers(1, 120, size=2))
        bx = int(rng.integers(x0, x1 - w + 1))
        by = int(rng.integers(y0, y1 - h + 1))
        boxes.append((bx, by, bx + w, by + h))
    return boxes


@pytest.mark.parametrize("recipe", ["dp1", "dp2"])
def test_regions_are_the_full_products_pixels(http, full_key, recipe):
    full = diffim(http, full_key, recipe=recipe)
    assert full.status_code == 200, full.text
    xy0, shape, wcs = frame(full.content)
    rng = np.random.default_rng(13)
    boxes = boxes_to_try(xy0, shape, rng)
    if recipe == "dp2":
        boxes = boxes[:3] + boxes[-2:]
    for box in boxes:
        response = diffim(
            http, full_key, recipe=recipe, box=",".join(map(str, box))
        )
        assert response.status_code == 200, (box, response.text)
        # The full product stored the solution: no solve for a region.
        assert response.headers["x-cache"] == "hit"
        assert served_box(response) == box
        assert plane_hashes(response.content) == plane_hashes(
            full.content, box, xy0
        ), box
    # Every other format cuts too (the triplets: see below).
    for name, media in (
        ("dp1-compressed", "application/fits"),
        ("dp1-decorrelated-psf", "application/fits"),
        ("lsst-images", "application/fits"),
        ("png", "image/png"),
    ):
        other = diffim(
            http, full_key, recipe=recipe, box="5,6,56,57", format=name
        )
        assert other.status_code == 200, (name, other.text)
        assert other.headers["content-type"] == media
        if name == "dp1-decorrelated-psf":
            with fits.open(io.BytesIO(other.content)) as hdulist:
                assert hdulist["DECORRELATED_PSF"].data.size > 0
    # A box partly off the detector is clipped, and says so.
    (x0, y0), (_, width) = xy0, shape
    asked = (x0 + width - 10, y0 - 5, x0 + width + 20, y0 + 25)
    clipped = diffim(
        http, full_key, recipe=recipe, box=",".join(map(str, asked))
    )
    assert clipped.status_code == 200
    assert served_box(clipped) == (x0 + width - 10, y0, x0 + width, y0 + 25)
    assert clipped.headers["x-recreate-clipped-from"] == ",".join(
        map(str, asked)
    )
    # ?ra=&dec=&size= is the box centred on the pixel the position is in.
    ra, dec = wcs.all_pix2world(123.2, 77.4, 0)
    around = diffim(http, full_key, recipe=recipe, ra=ra, dec=dec, size=21)
    assert around.status_code == 200, around.text
    box = (x0 + 113, y0 + 67, x0 + 134, y0 + 88)
    assert served_box(around) == box
    assert plane_hashes(around.content) == plane_hashes(full.content, box, xy0)


def test_a_region_triplet_is_science_template_and_the_regions_png(
    http, full_key
):
    box = "5,6,56,46"
    png = diffim(http, full_key, box=box, format="png")
    assert png.status_code == 200, png.text
    difference = read_png(png.content)
    assert difference.shape == (40, 51, 3)
    for stretch in ("zscale", "asinh"):
        triplet = diffim(
            http, full_key, box=box, format="png-triplet", stretch=stretch
        )
        assert triplet.status_code == 200, triplet.text
        assert triplet.headers["content-type"] == "image/png"
        assert triplet.headers["x-cache"] == "hit"
        assert served_box(triplet) == (5, 6, 56, 46)
        assert triplet.headers["etag"] != png.headers["etag"]
        rgb = read_png(triplet.content)
        # Three 51x40 panels, GAP apart: science, template, difference.
        assert rgb.shape == (40, 3 * 51 + 2 * GAP, 3)
        science, template, last = (
            rgb[:, i * (51 + GAP) : i * (51 + GAP) + 51] for i in range(3)
        )
        if stretch == "zscale":
            # The difference panel is the region's own png preview.
            assert np.array_equal(last, difference)
        # Science and template show the same stars; the difference not.
        assert (
            np.corrcoef(science[..., 0].ravel(), template[..., 0].ravel())[
                0, 1
            ]
            > 0.5
        )
        assert not np.array_equal(science, last)


BAD_REGIONS = [
    ({"box": "5000,5000,5010,5010"}, "box", "5000,5000,5010,5010 is outside"),
    ({"box": "-60,-60,-10,-10"}, "box", "-60,-60,-10,-10 is outside"),
    ({"box": "0,0,5000,10"}, "box", "at most 4096 px"),
    ({"ra": 53.0, "dec": -28.0, "size": 5000}, "size", "at most 4096 px"),
    ({"box": "1,2,3"}, "box", "four integers"),
    ({"box": "10,10,10,20"}, "box", "holds no pixel"),
    ({"box": "0,0,5,5", "ra": 1.0}, "box", "not both"),
    ({"ra": 53.0, "size": 5}, "dec", "dec missing"),
    ({"ra": 400.0, "dec": 0.0, "size": 5}, "ra", "got 400.0"),
    ({"ra": 53.0, "dec": -28.0, "size": 0}, "size", "got 0"),
    ({"ra": 180.0, "dec": 60.0, "size": 5}, "ra", "is outside"),
    ({"ra": 53.5, "dec": -27.0, "size": 5}, "size", "is outside"),
]


@pytest.mark.parametrize(("params", "where", "message"), BAD_REGIONS)
def test_bad_regions_are_422_naming_them_and_store_nothing(
    http,
    full_key,
    settings,
    cache_redis,
    control_redis,
    params,
    where,
    message,
):
    response = diffim(http, full_key, **params)
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["query", where]
    assert message in detail["msg"]
    if "outside" in message:
        assert f"visit {full_key[0]}" in detail["msg"]
    assert stored_keys(cache_redis) == []
    assert stored_keys(control_redis) == []
    assert stored_files(settings) == []


def test_concurrent_stamps_of_an_unsolved_detector_make_one_solve(
    api_url, http, other_full_key, settings, control_redis
):
    visit, detector = other_full_key
    boxes = [
        (10 + 5 * i, 20 + 3 * i, 61 + 5 * i, 71 + 3 * i) for i in range(50)
    ]

    async def ask_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api_url, timeout=120) as client:
            return await asyncio.gather(
                *(
                    client.get(
                        f"/api/v1/diffims/{visit}/{detector}",
                        params={"box": ",".join(map(str, box))},
                    )
                    for box in boxes
                )
            )

    responses = asyncio.run(ask_all())
    assert [r.status_code for r in responses] == [200] * len(boxes)
    assert solves(control_redis) == 1
    assert len(stored_files(settings)) == 1
    # Every stamp was rendered from the one solution: the same bytes
    # again for the same box, now from the stored solution.
    again = diffim(http, other_full_key, box=",".join(map(str, boxes[7])))
    assert again.content == responses[7].content
    assert again.headers["x-cache"] == "hit"
    assert solves(control_redis) == 1


def test_stamps_through_two_api_replicas_make_one_solve(
    api_url, http, other_full_key, settings, control_redis
):
    # A second API (its own services, process state and in-flight solves;
    # the same Redis, Dask cluster and solution store), as a second
    # replica behind a load balancer: the Redis lock keeps one solve.
    visit, detector = other_full_key
    boxes = [
        (10 + 7 * i, 30 + 2 * i, 61 + 7 * i, 81 + 2 * i) for i in range(24)
    ]

    async def ask_both(urls: tuple[str, str]) -> list[httpx.Response]:
        async with (
            httpx.AsyncClient(base_url=urls[0], timeout=120) as first,
            httpx.AsyncClient(base_url=urls[1], timeout=120) as second,
        ):
            return await asyncio.gather(
                *(
                    (first, second)[i % 2].get(
                        f"/api/v1/diffims/{visit}/{detector}",
                        params={"box": ",".join(map(str, box))},
                    )
                    for i, box in enumerate(boxes)
                )
            )

    with running_api(settings) as other_url:
        responses = asyncio.run(ask_both((api_url, other_url)))
    assert [r.status_code for r in responses] == [200] * len(boxes)
    assert solves(control_redis) == 1
    assert len(stored_files(settings)) == 1
    # Both replicas rendered from that one solution: the same bytes
    # again from the stored solution, for a box each replica served.
    for k in (0, 1):
        box = ",".join(map(str, boxes[k]))
        again = diffim(http, other_full_key, box=box)
        assert again.content == responses[k].content
    assert solves(control_redis) == 1


def test_solutions_survive_a_flushed_redis(
    api, http, full_key, settings, cache_redis, control_redis
):
    first = solution(http, full_key)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/fits"
    assert first.headers["x-cache"] == "miss"
    assert first.headers["x-recreate-solution"] == "solved"
    assert len(first.content) <= 64 * 1024
    second = solution(http, full_key)
    assert second.headers["x-cache"] == "hit"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    unchanged = solution(
        http, full_key, headers={"If-None-Match": first.headers["etag"]}
    )
    assert unchanged.status_code == 304
    stamp = diffim(http, full_key, box="40,50,91,101")
    assert stamp.status_code == 200
    # Redis loses everything, and this process forgets what it kept.
    cache_redis.flushall()
    control_redis.flushall()
    api[1].regions.solution_service.forget()
    back = solution(http, full_key)
    assert back.status_code == 200
    assert back.headers["x-cache"] == "hit"
    assert back.headers["x-recreate-solution"] == "store"
    assert back.content == first.content
    assert diffim(http, full_key, box="40,50,91,101").content == stamp.content
    assert solves(control_redis) == 0
    recipe_hash = first.headers["x-recreate-recipe-hash"]
    # Read back from the store, the hot copy is made again.
    assert (
        RedisSolutions(cache_redis).get_solution(recipe_hash) == first.content
    )


def _corrupt(data: bytes) -> bytes:
    """Return ``data`` with one byte of its last HDU's data changed."""
    with fits.open(io.BytesIO(data)) as hdulist:
        last = hdulist.fileinfo(len(hdulist) - 1)
        at = last["datLoc"] + 17
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]


def test_corrupt_or_foreign_solutions_are_solved_again_never_served(
    api, http, full_key, other_full_key, cache_redis, control_redis
):
    good = solution(http, full_key)
    foreign = solution(http, other_full_key).content
    recipe_hash = good.headers["x-recreate-recipe-hash"]
    stamp = diffim(http, full_key, box="100,100,151,151").content
    assert solves(control_redis) == 2
    services = api[1]
    files = services.cache.stores.solution_files
    hot = RedisSolutions(cache_redis)
    for bad in (_corrupt(good.content), foreign):
        # Both tiers hold the bad solution; this process kept none.
        files.put(recipe_hash, bad)
        hot.put_solution(recipe_hash, bad)
        services.regions.solution_service.forget()
        again = diffim(http, full_key, box="100,100,151,151")
        assert again.status_code == 200, again.text
        assert again.content == stamp
        assert again.headers["x-cache"] == "miss"
        assert files.get(recipe_hash) == good.content
        assert hot.get_solution(recipe_hash) == good.content
    assert solves(control_redis) == 4
    # The solution route checks what it reads in the same way.
    files.put(recipe_hash, foreign)
    hot.put_solution(recipe_hash, foreign)
    services.regions.solution_service.forget()
    served = solution(http, full_key)
    assert served.content == good.content
    assert served.headers["x-recreate-solution"] == "solved"


def test_a_bad_hot_copy_is_replaced_from_the_store_without_a_solve(
    api,
    http,
    full_key,
    other_full_key,
    cache_redis,
    control_redis,
    monkeypatch,
):
    good = solution(http, full_key)
    foreign = solution(http, other_full_key).content
    recipe_hash = good.headers["x-recreate-recipe-hash"]
    solved = solves(control_redis)
    services = api[1]
    # The store's file is read here: no task goes to the workers at all.
    broker = services.regions.solution_service.products.broker
    tasks = []
    start = broker.start
    monkeypatch.setattr(
        broker, "start", lambda *a, **k: tasks.append(a) or start(*a, **k)
    )
    files = services.cache.stores.solution_files
    hot = RedisSolutions(cache_redis)
    for bad in (_corrupt(good.content), foreign):
        # Redis holds a bad copy; the durable file is good.
        hot.put_solution(recipe_hash, bad)
        services.regions.solution_service.forget()
        served = solution(http, full_key)
        assert served.content == good.content
        assert served.headers["x-recreate-solution"] == "store"
        assert hot.get_solution(recipe_hash) == good.content
        assert files.get(recipe_hash) == good.content
    assert solves(control_redis) == solved
    assert tasks == []


def test_a_campaign_of_solutions_stores_solutions_and_no_products(
    api_url, http, full_key, other_full_key, settings, tmp_path, capsys
):
    keys = tmp_path / "keys.txt"
    keys.write_text(
        "".join(
            f"{visit} {detector}\n"
            for visit, detector in (full_key, other_full_key)
        )
    )
    code = main(
        [
            "prewarm",
            "--url",
            api_url,
            "--keys",
            str(keys),
            "--solutions-only",
            "--wait",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "2 solved, 0 already stored, 0 failed" in capsys.readouterr().out
    assert len(stored_files(settings)) == 2
    # Kilobytes per key in the cache: the solutions' hot copies only.
    cached = {
        key.decode()
        for key in redis.Redis.from_url(settings.cache_redis_url).keys("*")
    }
    assert cached and all(":solution:" in key for key in cached)
    with Client(api_url) as client:
        again = client.prewarm(
            "again", keys=[full_key, other_full_key], solutions_only=True
        )
        deadline = time.monotonic() + 60
        while (campaign := client.campaign(again["id"]))["state"] != "done":
            assert time.monotonic() < deadline, campaign
            time.sleep(0.1)
        # Already stored: counted, not solved again.
        assert campaign["solutions_only"] is True
        assert campaign["counts"]["already_cached"] == 2
        # The client's regions come from the stored solutions.
        box = (20, 30, 71, 81)
        by_box = client.cutout(*full_key, box=box)
        expected = diffim(http, full_key, box="20,30,71,81")
        assert expected.headers["x-cache"] == "hit"
        with fits.open(io.BytesIO(expected.content)) as hdulist:
            for name in PLANES:
                np.testing.assert_array_equal(
                    by_box[name].data, hdulist[name].data
                )
        out = tmp_path / "solution.fits"
        data = client.solution(*full_key, path=out)
        assert out.read_bytes() == data
        assert solution_from_bytes(data).recipe == "dp1"
        _, _, wcs = frame(diffim(http, full_key).content)
        ra, dec = wcs.all_pix2world(60.0, 70.0, 0)
        around = client.cutout(*full_key, ra=float(ra), dec=float(dec), size=9)
        assert around["IMAGE"].data.shape == (9, 9)
        with pytest.raises(InvalidRequestError, match="either box"):
            client.cutout(*full_key, box=box, size=9)
        with pytest.raises(InvalidRequestError, match="is outside"):
            client.cutout(*full_key, box=(5000, 5000, 5001, 5001))


def test_a_failed_solve_is_remembered_and_leaves_no_solution(
    http, uncovered_key, settings, cache_redis, control_redis
):
    before = _metric(http.get("/metrics").text, "recreate_failures_total")
    stamp = diffim(http, uncovered_key, box="10,10,61,61")
    assert stamp.status_code == 422, stamp.text
    (detail,) = stamp.json()["detail"]
    assert detail["type"] == "no_template_overlap"
    assert stored_keys(cache_redis) == []
    assert stored_files(settings) == []
    (remembered,) = stored_keys(control_redis)
    assert remembered.startswith("recreate:failure:")
    # The solution route, another stamp and the full product all answer
    # from the negative cache: no solve ran again.
    for again in (
        solution(http, uncovered_key),
        diffim(http, uncovered_key, box="0,0,5,5"),
        diffim(http, uncovered_key),
    ):
        assert again.status_code == 422
        assert again.json()["detail"][0]["msg"] == detail["msg"]
    failures = _metric(http.get("/metrics").text, "recreate_failures_total")
    assert failures - before == 1.0
    assert solves(control_redis) == 0
