"""Service fixtures: a real Dask cluster, real Redis, the real API."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from distributed import LocalCluster

from tests.support.service import key_with_coverage, running_api
from workers.services import Services
from workers.settings import Settings


@pytest.fixture(scope="session")
def thread_cluster() -> Iterator[LocalCluster]:
    """Two in-process workers of one thread each (fast to start)."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        dashboard_address=":0",
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def process_cluster() -> Iterator[LocalCluster]:
    """Two worker processes of one thread each (tasks and errors pickle)."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
    ) as cluster:
        yield cluster


def service_settings(
    ci_repo: object,
    cache_url: str,
    control_url: str,
    scheduler: str,
    **overrides: object,
) -> Settings:
    """Return settings pointing at the test repo, Redis and scheduler.

    Each gets its own empty solution store (beside the repository,
    inside pytest's temporary tree): solutions stored by one test's
    service never reach another's.
    """
    root = Path(ci_repo.root)  # type: ignore[attr-defined]
    overrides.setdefault(
        "solution_store",
        tempfile.mkdtemp(prefix="solutions-", dir=root.parent),
    )
    return Settings(
        butler_repo=str(root),
        cache_redis_url=cache_url,
        control_redis_url=control_url,
        scheduler_address=scheduler,
        **overrides,
    )


@pytest.fixture(scope="module")
def settings(
    ci_repo, redis_cache_server, redis_control_server, thread_cluster
) -> Settings:
    return service_settings(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )


@pytest.fixture(scope="module")
def api(settings) -> Iterator[tuple[str, Services]]:
    """The module's API: its base URL and its services."""
    started: list[Services] = []
    with running_api(settings, on_ready=started.append) as url:
        yield url, started[0]


@pytest.fixture(scope="module")
def api_url(api) -> str:
    return api[0]


@pytest.fixture
def http(api, settings, cache_redis, control_redis) -> Iterator[httpx.Client]:
    """An HTTP client; after each test, the service starts afresh.

    Both Redis instances are flushed (their fixtures), and the solution
    store emptied and the API's kept solutions forgotten here.
    """
    url, services = api
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client
    services.regions.solution_service.forget()
    store = Path(settings.solution_store)
    if store.is_dir():
        shutil.rmtree(store)


@pytest.fixture(scope="session")
def full_key(ci_repo) -> tuple[int, int]:
    return key_with_coverage(ci_repo, 1.0, 2.0)


@pytest.fixture(scope="session")
def other_full_key(ci_repo, full_key) -> tuple[int, int]:
    keys = [
        tuple(map(int, key.split("/")))
        for key, fraction in sorted(ci_repo.coverage.items())
        if fraction >= 1.0
    ]
    return next(k for k in keys if k != full_key)


@pytest.fixture(scope="session")
def uncovered_key(ci_repo) -> tuple[int, int]:
    return key_with_coverage(ci_repo, 0.0, 0.1)
