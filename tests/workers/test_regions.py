"""Regions: sky to pixel boxes, and a region's pixels are the product's.

Real Redis, a real Butler repository, a real Dask cluster (threads).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import pickle
import signal

import numpy as np
import pytest
from astropy.io import fits
from lsst.resources import ResourcePath

from cache import ResultStore
from recreate.errors import InvalidRequestError
from recreate.formats import get_format
from recreate.io.image_file import open_image_file
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox
from recreate.preview.render import GAP
from tests.support.png import read_png
from tests.workers.test_products import _body, _services
from workers.models import ProductRequest
from workers.regions import (
    Region,
    box_around,
    box_of_sky_points,
    clip_box,
    detector_box,
)
from workers.render_processes import _kept_solution, _render, keyed_solution
from workers.solution_tasks import region_key, render_region


def _request(key) -> ProductRequest:
    return ProductRequest(key[0], key[1], None, get_format("dp1"))


def _planes(data: bytes) -> dict[str, np.ndarray]:
    with fits.open(io.BytesIO(data)) as hdulist:
        return {
            name: np.array(hdulist[name].data)
            for name in ("IMAGE", "MASK", "VARIANCE")
        }


def test_boxes_from_the_sky_land_where_the_wcs_says(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    cache_redis,
    control_redis,
    full_key,
):
    services, _ = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )

    async def run() -> ImageGeometry:
        geometry = await services.regions.geometry(_request(full_key))
        await services.close()
        return geometry

    geometry = asyncio.run(run())
    whole = detector_box(geometry)
    assert (whole.width, whole.height) == geometry.shape[::-1]
    x, y = 37, 58
    ra, dec = geometry.wcs.all_pix2world(x, y, 0)
    box = box_around(geometry, float(ra), float(dec), 11)
    assert box == PixelBox(
        geometry.xy0[0] + x - 5, geometry.xy0[1] + y - 5, 11, 11
    )
    corners = geometry.wcs.all_pix2world([10, 30], [20, 25], 0)
    assert box_of_sky_points(geometry, *corners) == PixelBox(
        geometry.xy0[0] + 10, geometry.xy0[1] + 20, 21, 6
    )
    edge = PixelBox(whole.x0 - 5, whole.y0 - 5, 10, 10)
    assert clip_box(edge, geometry) == PixelBox(whole.x0, whole.y0, 5, 5)
    with pytest.raises(InvalidRequestError, match="size must be positive"):
        box_around(geometry, float(ra), float(dec), 0)


# A region up to local_max_pixels renders in the API's pool (of threads,
# or of render processes); a larger one (all of them, at 0) is a region
# task on a Dask worker, cached.
@pytest.mark.parametrize(
    ("local_max_pixels", "processes"),
    [(512 * 512, 0), (0, 0), (512 * 512, 1)],
)
def test_a_region_is_the_same_pixels_as_the_full_product(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    cache_redis,
    control_redis,
    full_key,
    local_max_pixels,
    processes,
):
    services, _ = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
        region_local_max_pixels=local_max_pixels,
        region_render_processes=processes,
    )
    assert (services.regions.processes is not None) == (processes > 0)

    async def run() -> tuple[bytes, Region, ImageGeometry, str]:
        full = await _body(await services.products.get(_request(full_key)))
        geometry = await services.regions.geometry(_request(full_key))
        whole = detector_box(geometry)
        box = PixelBox(whole.x0 + 17, whole.y0 + 9, 51, 40)
        region = await services.regions.region(_request(full_key), box)
        spec = await services.regions.solution_service.resolve(
            _request(full_key)
        )
        with pytest.raises(InvalidRequestError, match="holds no pixel"):
            await services.regions.region(
                _request(full_key), PixelBox(0, 0, 0, 5)
            )
        await services.close()
        return full, region, geometry, region_key(spec, box)

    full, region, geometry, key = asyncio.run(run())
    assert isinstance(region, Region)
    assert region.cache_state == "hit"
    # Rendered here, or by a region task that cached it under its key.
    assert ("region_seconds" in region.meta) == (local_max_pixels > 0)
    assert (ResultStore(cache_redis).head(key) is None) == (
        local_max_pixels > 0
    )
    whole, cut = _planes(full), _planes(region.data)
    rows = slice(region.box.y0 - geometry.xy0[1], None)
    cols = slice(region.box.x0 - geometry.xy0[0], None)
    for name in ("IMAGE", "MASK", "VARIANCE"):
        expected = whole[name][rows, cols][:40, :51]
        np.testing.assert_array_equal(cut[name], expected)
    with fits.open(io.BytesIO(region.data)) as hdulist:
        header = hdulist["IMAGE"].header
        assert header["LTV1"] == -region.box.x0
        assert header["LTV2"] == -region.box.y0


def test_a_large_region_triplet_is_a_cached_region_task_of_its_own(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    cache_redis,
    control_redis,
    full_key,
):
    services, _ = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
        region_local_max_pixels=0,
    )

    def request(name: str) -> ProductRequest:
        return ProductRequest(full_key[0], full_key[1], None, get_format(name))

    async def run() -> dict[str, tuple[Region, str]]:
        geometry = await services.regions.geometry(request("png"))
        whole = detector_box(geometry)
        box = PixelBox(whole.x0 + 17, whole.y0 + 9, 51, 40)
        found = {}
        for name in ("png", "png-triplet"):
            region = await services.regions.region(request(name), box)
            assert isinstance(region, Region)
            spec = await services.regions.solution_service.resolve(
                request(name)
            )
            found[name] = (region, region_key(spec, box))
        await services.close()
        return found

    found = asyncio.run(run())
    store = ResultStore(cache_redis)
    (png, png_key), (triplet, triplet_key) = found.values()
    assert png_key != triplet_key
    for region, key in found.values():
        head = store.head(key)
        assert head is not None
        assert head.size == len(region.data)
    difference = read_png(png.data)
    rgb = read_png(triplet.data)
    assert rgb.shape == (40, 3 * 51 + 2 * GAP, 3)
    assert np.array_equal(rgb[:, 2 * (51 + GAP) :], difference)


def test_a_detectors_first_stamp_makes_one_butler_lookup(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    full_key,
):
    # The geometry (to place the stamp) and the spec (to find the
    # solution) share one Butler answer; forgetting drops it.
    services, butler = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )
    solutions = services.regions.solution_service

    async def run() -> tuple[int, int, str, str]:
        request = _request(full_key)
        await services.regions.geometry(request)
        first = await solutions.resolve(request)
        once = butler.lookups
        solutions.forget()
        again = await solutions.resolve(request)
        await services.close()
        return once, butler.lookups, first.recipe_hash, again.recipe_hash

    once, twice, first_hash, again_hash = asyncio.run(run())
    assert (once, twice) == (1, 2)
    assert first_hash == again_hash


def test_forgetting_drops_the_detectors_visit_image_not_the_patches(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    full_key,
):
    # What the light-curve benchmark forgets between cycles: the next
    # stamp of the detector costs what a never-seen epoch's costs.
    services, butler = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )
    solutions = services.regions.solution_service

    async def run() -> tuple[object, ...]:
        request = _request(full_key)
        await services.regions.geometry(request)
        found = await solutions.find_inputs(request)
        visit = ResourcePath(found.visit_image.uri).ospath
        patch = ResourcePath(found.templates[0].uri).ospath
        parsed = open_image_file(visit), open_image_file(patch)
        services.regions.forget()
        await services.regions.geometry(request)
        again = open_image_file(visit), open_image_file(patch)
        await services.close()
        return *parsed, *again, butler.lookups

    visit, patch, visit_again, patch_again, lookups = asyncio.run(run())
    assert visit_again is not visit
    assert patch_again is patch
    assert lookups == 2


def test_a_render_process_forgets_the_visit_images_the_api_forgets(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    full_key,
    monkeypatch,
):
    # What runs in a render process, run here: within one generation of
    # the API's it keeps the visit image it read; once the API forgets
    # (a new generation), the next render reads it as never seen. The
    # template patches stay, and the bytes are the API's own render's.
    services, _ = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )
    solutions = services.regions.solution_service

    async def run() -> tuple[object, ...]:
        spec = await solutions.resolve(_request(full_key))
        found = await solutions.get(spec)
        await services.close()
        return spec, found.solution, found.data

    spec, solution, data = asyncio.run(run())
    # A render sets the thread count it is given: put it back after.
    monkeypatch.delenv("RECREATE_THREADS", raising=False)
    box = PixelBox(*solution.frame.xy0, 21, 17)
    visit = ResourcePath(spec.inputs.visit_image.uri).ospath
    patch = ResourcePath(spec.inputs.templates[0].uri).ospath
    # As the API sends it: pickled, its fields only.
    sent = _sent(keyed_solution(solution, data))
    assert sent[0] == hashlib.sha256(data).hexdigest()
    assert "engine" not in sent[1].__dict__
    first = _render((7, 2), spec, sent, box)
    kept = open_image_file(visit), open_image_file(patch)
    same_generation = _render((7, 2), spec, sent, box)
    assert open_image_file(visit) is kept[0]
    next_generation = _render((8, 1), spec, sent, box)
    assert open_image_file(visit) is not kept[0]
    assert open_image_file(patch) is kept[1]
    assert first == same_generation == next_generation
    assert first == render_region(spec, solution, box)
    # The first copy of a solution is kept (its tile engine built once);
    # a generation's forgetting drops it.
    again = _sent(keyed_solution(solution, data))
    assert _kept_solution(again) is _kept_solution(sent)
    assert "engine" in _kept_solution(again).__dict__
    assert sent[1].content_hash() == solution.content_hash()


def _sent(value: object) -> object:
    """Return ``value`` through pickle, as a render process gets it."""
    return pickle.loads(pickle.dumps(value))  # noqa: S301 - our own bytes


def test_a_render_process_that_dies_is_replaced(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    full_key,
):
    services, _ = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
        region_render_processes=1,
    )
    processes = services.regions.processes
    assert processes is not None

    async def run() -> tuple[Region, Region, int, int]:
        request = _request(full_key)
        geometry = await services.regions.geometry(request)
        whole = detector_box(geometry)
        box = PixelBox(whole.x0 + 3, whole.y0 + 4, 21, 21)
        before = await services.regions.region(request, box)
        first = processes._pool
        assert first is not None
        dead = first.submit(os.getpid).result()
        os.kill(dead, signal.SIGKILL)
        after = await services.regions.region(request, box)
        assert processes._pool is not None
        alive = processes._pool.submit(os.getpid).result()
        await services.close()
        return before, after, dead, alive

    before, after, dead, alive = asyncio.run(run())
    assert isinstance(after, Region)
    assert after.data == before.data
    assert alive != dead
