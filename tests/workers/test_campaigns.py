"""Prewarm campaigns on real Redis and a Dask cluster of worker processes."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from distributed import Client

from cache import CampaignStore, JobStore
from tests.support.products import manifest_keys
from tests.support.redis import stored_keys
from tests.support.service import running_api
from tests.workers.conftest import service_settings
from workers.cli import main
from workers.tasks import RECOMPUTES_COUNTER

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(process_cluster):
    return process_cluster


def _settings(
    ci_repo, redis_cache_server, redis_control_server, cluster, **overrides
):
    return service_settings(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        cluster.scheduler_address,
        lock_ttl_seconds=3.0,
        **overrides,
    )


@pytest.fixture
def settings(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    cluster,
    cache_redis,
    control_redis,
):
    return _settings(
        ci_repo, redis_cache_server, redis_control_server, cluster
    )


@pytest.fixture
def throttled(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    cluster,
    cache_redis,
    control_redis,
):
    """Settings allowing one campaign task in flight (a slow campaign)."""
    return _settings(
        ci_repo,
        redis_cache_server,
        redis_control_server,
        cluster,
        campaign_max_inflight=1,
    )


def _keys(ci_repo, low=0.0, high=2.0):
    return [
        tuple(map(int, key.split("/")))
        for key, fraction in sorted(ci_repo.coverage.items())
        if low <= fraction < high
    ]


def _post(url, **body):
    return httpx.post(f"{url}/api/v1/campaigns", json=body, timeout=60)


def _wait(url, campaign_id, until=("done", "cancelled"), timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        campaign = httpx.get(f"{url}/api/v1/campaigns/{campaign_id}").json()
        if campaign["state"] in until:
            return campaign
        time.sleep(0.2)
    pytest.fail(f"campaign {campaign_id} did not finish: {campaign}")


def test_a_campaign_survives_a_killed_and_an_added_worker(
    ci_repo, settings, cluster, cache_redis, control_redis
):
    # The last visits: the survey's edge, with keys that fail too.
    keys = _keys(ci_repo)[-24:]
    failing = set(_keys(ci_repo, 0.0, 0.2))
    assert set(keys) & failing
    with (
        running_api(settings) as url,
        Client(cluster.scheduler_address, timeout=30) as client,
    ):
        created = _post(
            url,
            name="all",
            keys=[{"visit": v, "detector": d} for v, d in keys],
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        assert created.headers["location"].endswith(campaign_id)
        # Mid-campaign: kill one worker process, add a third worker.
        _wait_for_done_keys(url, campaign_id, 5)
        pids = client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        cluster.scale(3)
        campaign = _wait(url, campaign_id)
        cluster.scale(2)
    counts = campaign["counts"]
    assert campaign["state"] == "done"
    assert counts["total"] == len(keys)
    assert counts["queued"] == counts["running"] == 0
    # Under 10% coverage is "no work"; 10-20% may fail its kernel fit.
    assert {(f["visit"], f["detector"]) for f in campaign["failed"]} <= failing
    assert all(f["code"] == "no_template_overlap" for f in campaign["failed"])
    assert counts["done"] + counts["already_cached"] + counts["failed"] == (
        len(keys)
    )
    # Nothing lost: every product that can be made is in the cache now.
    cached = len(manifest_keys(cache_redis, "dp1"))
    assert cached == counts["done"] + counts["already_cached"]
    assert counts["missing"] == 0
    # Nothing computed twice: one recompute per cached product. The kill
    # decides only who reports it: a worker killed after caching its
    # product, before answering, leaves its retry to find it cached
    # ("already cached", not "done"), so "done" is not the invariant; a
    # kill between the cache write and the count (two consecutive Redis
    # commands) would leave it one short.
    recomputes = JobStore(control_redis).counter(RECOMPUTES_COUNTER)
    assert cached - 1 <= recomputes <= cached


def _settle(url, campaign_id, timeout=120):
    """Wait until no key of a (cancelled) campaign is still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        campaign = httpx.get(f"{url}/api/v1/campaigns/{campaign_id}").json()
        if campaign["counts"]["running"] == 0:
            return campaign
        time.sleep(0.1)
    pytest.fail("keys still running")


def _wait_for_done_keys(url, campaign_id, count, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        campaign = httpx.get(f"{url}/api/v1/campaigns/{campaign_id}").json()
        if campaign["counts"]["done"] >= count:
            return
        time.sleep(0.05)
    pytest.fail("the campaign made no progress")


def test_cached_keys_are_counted_and_skipped(ci_repo, settings):
    keys = _keys(ci_repo, 1.0)[:4]
    with running_api(settings) as url:
        for visit, detector in keys[:2]:
            assert (
                httpx.get(
                    f"{url}/api/v1/diffims/{visit}/{detector}", timeout=120
                ).status_code
                == 200
            )
        created = _post(
            url,
            name="some",
            keys=[{"visit": v, "detector": d} for v, d in keys],
        )
        campaign = _wait(url, created.json()["id"])
    assert campaign["counts"]["already_cached"] == 2
    assert campaign["counts"]["done"] == 2
    assert campaign["throughput_per_minute"] > 0


def test_cancel_stops_what_has_not_started(throttled, ci_repo, control_redis):
    settings = throttled
    keys = _keys(ci_repo, 1.0)[:20]
    with running_api(settings) as url:
        created = _post(
            url, name="x", keys=[{"visit": v, "detector": d} for v, d in keys]
        )
        campaign_id = created.json()["id"]
        _wait_for_done_keys(url, campaign_id, 1)
        cancelled = httpx.delete(f"{url}/api/v1/campaigns/{campaign_id}")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        campaign = _settle(url, campaign_id)
    counts = campaign["counts"]
    assert counts["cancelled"] >= 10
    assert counts["queued"] == 0
    assert counts["running"] == 0
    assert counts["done"] + counts["cancelled"] == 20
    assert JobStore(control_redis).counter(RECOMPUTES_COUNTER) <= 20 - 10


def test_a_restarted_broker_resumes_unfinished_campaigns(
    throttled, ci_repo, control_redis
):
    settings = throttled
    keys = _keys(ci_repo, 1.0)[:8]
    with running_api(settings) as url:
        created = _post(
            url, name="r", keys=[{"visit": v, "detector": d} for v, d in keys]
        )
        campaign_id = created.json()["id"]
        _wait_for_done_keys(url, campaign_id, 1)
    # The broker is gone mid-campaign: work is left queued or running.
    store = CampaignStore(control_redis)
    left = store.get(campaign_id).counts
    assert left["queued"] + left["running"] > 0
    with running_api(settings) as url:
        campaign = _wait(url, campaign_id)
    assert campaign["state"] == "done"
    assert (
        campaign["counts"]["done"] + campaign["counts"]["already_cached"] == 8
    )
    assert JobStore(control_redis).counter(RECOMPUTES_COUNTER) == 8


def test_interactive_requests_overtake_a_saturating_campaign(
    ci_repo, settings
):
    keys = _keys(ci_repo, 1.0)
    probe, other = keys[-1], keys[-2]
    with running_api(settings) as url:
        start = time.perf_counter()
        idle = httpx.get(
            f"{url}/api/v1/diffims/{other[0]}/{other[1]}", timeout=120
        )
        idle_seconds = time.perf_counter() - start
        assert idle.status_code == 200
        created = _post(
            url,
            name="big",
            keys=[{"visit": v, "detector": d} for v, d in keys[:-2]],
        )
        campaign_id = created.json()["id"]
        _wait_for_done_keys(url, campaign_id, 2)
        start = time.perf_counter()
        busy = httpx.get(
            f"{url}/api/v1/diffims/{probe[0]}/{probe[1]}", timeout=120
        )
        busy_seconds = time.perf_counter() - start
        assert busy.status_code == 200
        campaign = httpx.get(f"{url}/api/v1/campaigns/{campaign_id}").json()
        # Served long before the campaign's queue drained.
        assert campaign["counts"]["queued"] > 10, campaign["counts"]
        httpx.delete(f"{url}/api/v1/campaigns/{campaign_id}")
        _settle(url, campaign_id)
    # One campaign task at most stands in front of it (plus noise).
    assert busy_seconds < idle_seconds + 10


BAD_BODIES = [
    ({"name": "x"}, 422, "invalid_parameter"),
    (
        {
            "name": "x",
            "keys": [{"visit": 1, "detector": 1}],
            "selection": {"band": "r"},
        },
        422,
        "invalid_parameter",
    ),
    (
        {"name": "x", "keys": [{"visit": -1, "detector": 1}]},
        422,
        "invalid_parameter",
    ),
    (
        {"name": "x", "keys": [{"visit": "a", "detector": 1}]},
        422,
        "invalid_parameter",
    ),
    (
        {"name": "", "keys": [{"visit": 1, "detector": 1}]},
        422,
        "invalid_parameter",
    ),
    (
        {
            "name": "x",
            "selection": {"cone": {"ra": 1, "dec": 100, "radius": 1}},
        },
        422,
        "invalid_parameter",
    ),
    ({"name": "x", "selection": {"band": "nope"}}, 422, "invalid_parameter"),
    (
        {"name": "x", "keys": [{"visit": 1, "detector": 1}], "format": "tiff"},
        422,
        "invalid_parameter",
    ),
    (
        {"name": "x", "keys": [{"visit": 1, "detector": 1}] * 11},
        413,
        "too_many_keys",
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
def test_bad_campaigns_are_refused_and_store_nothing(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    cluster,
    cache_redis,
    control_redis,
    body,
    status,
    code,
):
    settings = _settings(
        ci_repo,
        redis_cache_server,
        redis_control_server,
        cluster,
        campaign_max_keys=10,
    )
    with running_api(settings) as url:
        response = _post(url, **body)
    assert response.status_code == status, response.text
    assert response.json()["detail"][0]["type"] == code
    assert stored_keys(control_redis) == []
    assert cache_redis.dbsize() == 0


def test_a_selection_campaign_and_the_cli(ci_repo, settings, tmp_path, capsys):
    visit, detector = _keys(ci_repo, 1.0)[0]
    with running_api(settings) as url:
        created = _post(
            url,
            name="sel",
            selection={"visits": [visit], "detectors": [detector]},
        )
        assert created.status_code == 201, created.text
        assert created.json()["total"] == 1
        listed = httpx.get(f"{url}/api/v1/campaigns").json()
        assert [c["id"] for c in listed] == [created.json()["id"]]
        assert listed[0]["selection"]["visits"] == [visit]
        _wait(url, created.json()["id"])
        keys_file = tmp_path / "keys.txt"
        keys_file.write_text(f"# a key\n{visit} {detector}\n")
        code = main(
            ["prewarm", "--url", url, "--keys", str(keys_file), "--wait"]
        )
    assert code == 0
    out = capsys.readouterr()
    assert "1 already cached" in out.out
    assert "1/1" in out.err
