"""Solves started by cutouts and light curves spend the caller's budget.

A SODA cutout or a light-curve epoch on a detector with no solution
starts a solve: a recreation's worth of work, charged to the caller's
``recompute`` budget as a product miss is (on top of the ``cutout``
budget of the request itself).
"""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from recreate.butler import open_butler
from recreate.discovery import busiest_position, find_footprints
from tests.support.service import running_api
from tests.workers.conftest import service_settings
from workers.services import Services

SYNC = "/api/cutout/sync"
STAMPS = "/api/v1/stamps"


@pytest.fixture(scope="module")
def settings(
    ci_repo, redis_cache_server, redis_control_server, thread_cluster
):
    return service_settings(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
        quotas="request=600/900,recompute=1/900",
    )


@pytest.fixture(scope="module")
def api(settings):
    started: list[Services] = []
    with running_api(settings, on_ready=started.append) as url:
        yield url, started[0]


@pytest.fixture
def client(api, settings, cache_redis, control_redis):
    """A client on a fresh service: no solution stored, no budget spent.

    Both Redis are flushed after each test (their fixtures); the
    solution store is emptied and the API's kept solutions forgotten
    before.
    """
    url, services = api
    services.regions.solution_service.forget()
    shutil.rmtree(settings.solution_store, ignore_errors=True)
    with httpx.Client(base_url=url, timeout=120) as http:
        yield http


def _busiest(ci_repo) -> tuple[float, float, list[tuple[int, int]]]:
    ra, dec, epochs = busiest_position(open_butler(str(ci_repo.root)))
    return ra, dec, [(f.visit, f.detector) for f in epochs]


def test_a_light_curve_spends_the_budget_per_solve(client, ci_repo):
    ra, dec, keys = _busiest(ci_repo)
    assert len(keys) >= 3
    created = client.post(STAMPS, json={"ra": ra, "dec": dec, "size": 11})
    assert created.status_code == 202, created.text
    job_url = created.json()["url"]
    deadline = time.monotonic() + 180
    while (job := client.get(job_url).json())["phase"] not in (
        "COMPLETED",
        "ERROR",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    # One solve was in the budget; every other epoch is refused by name.
    assert job["phase"] == "COMPLETED", job
    failed = job["failed"]
    assert len(failed) == len(job["epochs"]) - 1
    assert {f["code"] for f in failed} == {"rate_limited"}
    assert "'recompute' budget" in failed[0]["message"]


def test_a_sync_cutout_that_solves_spends_the_budget(client, ci_repo):
    _, _, keys = _busiest(ci_repo)
    butler = open_butler(str(ci_repo.root))
    centres = {
        (f.visit, f.detector): f.centre for f in find_footprints(butler)
    }

    def cutout(key: tuple[int, int]) -> httpx.Response:
        ra, dec = centres[key]
        return client.get(
            SYNC,
            params={
                "ID": f"ivo://recreate.lsst/repo?visit={key[0]}"
                f"&detector={key[1]}",
                "CIRCLE": f"{ra} {dec} {3 / 3600}",
            },
        )

    assert cutout(keys[0]).status_code == 200
    # The same detector again: its solution is stored, nothing to spend.
    assert cutout(keys[0]).status_code == 200
    refused = cutout(keys[1])
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"].startswith("text/plain")
    assert "'recompute' budget" in refused.text
