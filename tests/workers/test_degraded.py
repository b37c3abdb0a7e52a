"""Degraded modes: Redis down or restarted, scheduler gone, slow tasks."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from cache import RedisServer
from tests.support.products import manifest_keys
from tests.support.service import free_port, running_api
from tests.workers.conftest import service_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis(tmp_path):
    """Redis servers of this test alone: it stops and restarts them."""
    with (
        RedisServer(maxmemory="128mb", policy="allkeys-lru") as cache,
        RedisServer(policy="noeviction", data_dir=tmp_path) as control,
    ):
        yield cache, control


def get(url, key, **kwargs):
    return httpx.get(
        f"{url}/api/v1/diffims/{key[0]}/{key[1]}", timeout=120, **kwargs
    )


def test_redis_down_still_serves_and_health_says_degraded(
    ci_repo, own_redis, thread_cluster, full_key
):
    cache, control = own_redis
    settings = service_settings(
        ci_repo, cache.url, control.url, thread_cluster.scheduler_address
    )
    with running_api(settings) as url:
        reference = get(url, full_key)
        assert reference.status_code == 200
        cache.stop()
        control.stop()
        health = httpx.get(f"{url}/api/v1/health").json()
        assert health["status"] == "degraded"
        assert health["components"]["cache"] == "down"
        assert health["components"]["control"] == "down"
        served = get(url, full_key)
        assert served.status_code == 200, served.text
        assert served.headers["x-cache"] == "miss"
        assert served.headers["x-recreate-degraded"] == "cache-unavailable"
        assert served.content == reference.content
        # Redis comes back (empty: the cache keeps nothing on disk).
        cache.restart()
        control.restart()
        assert httpx.get(f"{url}/api/v1/health").json()["status"] == "ok"
        again = get(url, full_key)
        assert again.headers["x-cache"] == "miss"
        assert get(url, full_key).headers["x-cache"] == "hit"
        assert again.content == reference.content


def test_a_slow_recompute_answers_202_and_still_fills_the_cache(
    ci_repo, own_redis, thread_cluster, full_key
):
    cache, control = own_redis
    settings = service_settings(
        ci_repo,
        cache.url,
        control.url,
        thread_cluster.scheduler_address,
        sync_timeout_seconds=0.01,
    )
    with running_api(settings) as url:
        accepted = get(url, full_key)
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert accepted.headers["location"].endswith(f"/jobs/{job['id']}")
        assert accepted.headers["retry-after"]
        assert job["state"] == "running"
        deadline = time.monotonic() + 120
        while job["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            job = httpx.get(accepted.headers["location"]).json()
        assert job["state"] == "done"
        served = httpx.get(job["url"], timeout=60)
        assert served.status_code == 200
        assert served.headers["x-cache"] == "hit"


def _scheduler(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _worker(address: str) -> subprocess.Popen[bytes]:
    recreate = str(
        __import__("pathlib").Path(sys.executable).with_name("recreate")
    )
    return subprocess.Popen(
        [
            recreate,
            "worker",
            address,
            "--nthreads",
            "1",
            "--memory-limit",
            "2GiB",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    """Terminate processes together, then reap them (kill if they linger)."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_scheduler_loss_is_503_and_recovers(
    ci_repo, own_redis, full_key, other_full_key
):
    cache, control = own_redis
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = _scheduler(port)
    worker = _worker(address)
    settings = service_settings(ci_repo, cache.url, control.url, address)
    try:
        with running_api(settings) as url:
            first = get(url, full_key)
            assert first.status_code == 200, first.text
            _stop(scheduler)
            _stop(worker)
            lost = get(url, other_full_key)
            assert lost.status_code == 503, lost.text
            assert lost.headers["retry-after"]
            assert lost.json()["detail"][0]["type"] == "service_unavailable"
            health = httpx.get(f"{url}/api/v1/health").json()
            assert health["components"]["scheduler"] == "down"
            # A cached product is still served without a scheduler.
            assert get(url, full_key).headers["x-cache"] == "hit"
            scheduler = _scheduler(port)
            worker = _worker(address)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                back = get(url, other_full_key)
                if back.status_code == 200:
                    break
                time.sleep(0.5)
            assert back.status_code == 200, back.text
    finally:
        _stop(worker, scheduler)


def test_a_campaign_survives_a_scheduler_restart(ci_repo, own_redis):
    from cache import JobStore
    from workers.tasks import RECOMPUTES_COUNTER

    cache, control = own_redis
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler, worker = _scheduler(port), _worker(address)
    settings = service_settings(
        ci_repo,
        cache.url,
        control.url,
        address,
        campaign_max_inflight=1,
        lock_ttl_seconds=3.0,
    )
    keys = [
        tuple(map(int, key.split("/")))
        for key, fraction in sorted(ci_repo.coverage.items())
        if fraction >= 1.0
    ][:5]
    try:
        with running_api(settings) as url:
            created = httpx.post(
                f"{url}/api/v1/campaigns",
                json={
                    "name": "outage",
                    "keys": [{"visit": v, "detector": d} for v, d in keys],
                },
            ).json()
            status = f"{url}/api/v1/campaigns/{created['id']}"
            deadline = time.monotonic() + 120
            while httpx.get(status).json()["counts"]["done"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            _stop(scheduler)
            _stop(worker)
            scheduler, worker = _scheduler(port), _worker(address)
            while httpx.get(status).json()["state"] != "done":
                assert time.monotonic() < deadline + 120
                time.sleep(0.5)
            campaign = httpx.get(status).json()
    finally:
        _stop(worker, scheduler)
    counts = campaign["counts"]
    assert counts["failed"] == 0, campaign["failed"]
    assert counts["done"] + counts["already_cached"] == len(keys)
    # Each key computed once: a task the outage cut off after it cached
    # its product shows up as "already cached" on resubmission.
    recomputes = JobStore(control.client()).counter(RECOMPUTES_COUNTER)
    assert recomputes == len(keys)


def test_overload_is_503_with_retry_after_and_caches_nothing(
    ci_repo, own_redis, thread_cluster, full_key, other_full_key
):
    cache, control = own_redis
    settings = service_settings(
        ci_repo,
        cache.url,
        control.url,
        thread_cluster.scheduler_address,
        max_inflight=1,
        sync_timeout_seconds=0.01,
        retry_after_seconds=7,
    )
    with running_api(settings) as url:
        first = get(url, full_key)
        assert first.status_code == 202
        refused = get(url, other_full_key)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "7"
        (detail,) = refused.json()["detail"]
        assert detail["type"] == "overloaded"
        assert "limit 1" in detail["msg"]
        job = first.json()
        deadline = time.monotonic() + 120
        while job["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            job = httpx.get(first.headers["location"]).json()
        assert job["state"] == "done"
    # The refused product was never started: only the first is cached.
    assert len(manifest_keys(cache.client(), "dp1")) == 1


def _full_keys(ci_repo, count):
    return [
        tuple(map(int, key.split("/")))
        for key, fraction in sorted(ci_repo.coverage.items())
        if fraction >= 1.0
    ][:count]


def _campaign(url, keys):
    created = httpx.post(
        f"{url}/api/v1/campaigns",
        json={
            "name": "fault",
            "keys": [{"visit": v, "detector": d} for v, d in keys],
        },
    )
    assert created.status_code == 201, created.text
    return f"/api/v1/campaigns/{created.json()['id']}"


def _until(status, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        campaign = httpx.get(status).json()
        if "detail" in campaign:  # the store is down: 503
            campaign = {"counts": {}, "state": "unknown", **campaign}
        if predicate(campaign):
            return campaign
        assert time.monotonic() < deadline, campaign
        time.sleep(0.1)


def test_a_campaign_goes_on_by_itself_after_a_control_store_outage(
    ci_repo, own_redis, thread_cluster
):
    cache, control = own_redis
    keys = _full_keys(ci_repo, 4)
    settings = service_settings(
        ci_repo,
        cache.url,
        control.url,
        thread_cluster.scheduler_address,
        campaign_max_inflight=1,
    )
    with running_api(settings) as url:
        status = url + _campaign(url, keys)
        _until(status, lambda c: c["counts"]["done"] >= 1)
        control.stop()
        assert httpx.get(status).status_code == 503
        time.sleep(1.5)
        control.restart()
        # No restart of the service: the runner resumes on its own.
        campaign = _until(status, lambda c: c["state"] == "done", 90)
    counts = campaign["counts"]
    assert counts["done"] + counts["already_cached"] == len(keys)
    assert counts["missing"] == counts["failed"] == 0
    cached = manifest_keys(cache.client(), "dp1")
    assert len(cached) == len(keys)


def test_counts_say_what_is_cached_now_and_a_resume_remakes_it(
    ci_repo, own_redis, thread_cluster
):
    cache, control = own_redis
    keys = _full_keys(ci_repo, 5)
    settings = service_settings(
        ci_repo,
        cache.url,
        control.url,
        thread_cluster.scheduler_address,
        campaign_max_inflight=1,
    )
    with running_api(settings) as url:
        path = _campaign(url, keys)
        _until(url + path, lambda c: c["counts"]["done"] >= 2)
    # The service stops mid-campaign; its cache is lost (a restart of
    # the embedded cache server keeps nothing).
    cache.client().flushall()
    with running_api(settings) as url:
        status = url + path
        campaign = _until(status, lambda c: c["state"] == "done", 90)
        counts = campaign["counts"]
        assert counts["done"] + counts["already_cached"] == len(keys)
        assert counts["missing"] == 0
        assert len(manifest_keys(cache.client(), "dp1")) == (len(keys))
        # The cache loses everything again: the finished campaign's
        # counts say so instead of "done".
        cache.client().flushall()
        after = httpx.get(status).json()["counts"]
    assert after["missing"] == len(keys)
    assert after["done"] == after["already_cached"] == 0
