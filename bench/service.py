"""Service benchmark: the API, the cache and campaigns at full size.

Runs the real service (two redis-servers, a LocalCluster of worker
processes, the API over HTTP) on a full-size simulated ``comcam``
repository (``data/comcam-repo``, simulated on first use: a few
minutes) and prints:

* a cold request (miss: recompute on one worker) and a warm one (hit),
  its first byte, the bytes served, what Redis holds for them, a 304
  revalidation; the same for the tile-compressed format
  (``dp1-compressed``);
* campaign throughput (detectors per minute) with 1 and 2 worker
  processes, and the scaling efficiency between them;
* the latency of an interactive request while a campaign saturates the
  workers, against the same request on an idle service;
* the peak memory of a worker process.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from distributed import Client
from served import served_api

from cache import RedisServer
from recreate.butler import find_inputs, open_butler
from recreate.client import Client as ApiClient
from recreate.errors import RecreateError
from recreate.memory import retain_freed_memory

REPO = Path(os.environ.get("BENCH_COMCAM_REPO", "data/comcam-repo"))
#: Keys per campaign run: enough for 2 workers to overlap well.
CAMPAIGN_KEYS = 6
#: Cache hits timed; the median is reported.
HIT_REPEATS = 5
#: The lossless tile-compressed format, as DP1 ships its files.
COMPRESSED = "dp1-compressed"
#: Seconds between polls of a campaign.
POLL_SECONDS = 0.5


def ensure_repo() -> None:
    """Simulate the full-size repository if it is missing."""
    if (REPO / "butler.yaml").exists():
        return
    from recreate.simulate.repository import simulate_repository

    print(f"simulating the comcam repository in {REPO} (minutes) ...")
    start = time.perf_counter()
    simulate_repository(REPO, "comcam", 1, jobs=2)
    print(f"  done in {time.perf_counter() - start:.0f} s")


def covered_keys(count: int) -> list[tuple[int, int]]:
    """Return keys whose templates cover them (2+ patches), in order."""
    butler = open_butler(str(REPO))
    refs = sorted(
        butler.registry.queryDatasets("visit_image", findFirst=True),
        key=lambda ref: (ref.dataId["visit"], ref.dataId["detector"]),
    )
    keys = []
    for ref in refs:
        key = (int(ref.dataId["visit"]), int(ref.dataId["detector"]))
        try:
            found = find_inputs(butler, *key)
        except RecreateError:
            continue
        if len(found.templates) >= 2:
            keys.append(key)
        if len(keys) == count:
            break
    return keys


@contextmanager
def service(
    cache: RedisServer, control: RedisServer, workers: int
) -> Iterator[tuple[str, ApiClient, Client]]:
    """Run the API on a fresh cluster of ``workers`` processes.

    Yields its URL, an API client of it and a Dask client of the cluster.
    """
    for server in (cache, control):
        server.client().flushall()
    with (
        served_api(REPO, cache, control, workers=workers) as (url, cluster),
        Client(cluster) as client,
        ApiClient(url, timeout=60, poll_interval=POLL_SECONDS) as api,
    ):
        yield url, api, client


def timed_get(
    url: str,
    key: tuple[int, int],
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[httpx.Response, float]:
    """GET one difference image; return the response and its seconds."""
    start = time.perf_counter()
    response = httpx.get(
        f"{url}/api/v1/diffims/{key[0]}/{key[1]}",
        timeout=600,
        headers=headers,
        params=params,
    )
    seconds = time.perf_counter() - start
    if response.status_code not in (200, 304):
        sys.exit(f"GET {key} failed: {response.status_code} {response.text}")
    return response, seconds


@dataclass(frozen=True)
class Streamed:
    """One GET read as a stream: first byte, whole body, size."""

    first_byte_s: float
    total_s: float
    size: int
    status: int
    headers: httpx.Headers


def streamed_get(
    url: str, key: tuple[int, int], params: dict[str, str] | None = None
) -> Streamed:
    """GET one difference image as a stream, timing its first byte."""
    first = None
    size = 0
    start = time.perf_counter()
    with httpx.stream(
        "GET",
        f"{url}/api/v1/diffims/{key[0]}/{key[1]}",
        timeout=600,
        params=params,
    ) as response:
        for part in response.iter_raw():
            if first is None:
                first = time.perf_counter() - start
            size += len(part)
    total = time.perf_counter() - start
    return Streamed(
        first or total, total, size, response.status_code, response.headers
    )


def hit_rows(
    url: str, key: tuple[int, int], label: str, params: dict[str, str]
) -> list[tuple[str, str]]:
    """Time a miss then hits of one product; return the table's rows."""
    miss = streamed_get(url, key, params)
    if miss.status != 200:
        return [(f"{label}: not offered", f"HTTP {miss.status}")]
    hits = [streamed_get(url, key, params) for _ in range(HIT_REPEATS)]
    hit_s = float(np.median([hit.total_s for hit in hits]))
    first_s = float(np.median([hit.first_byte_s for hit in hits]))
    recompute = float(miss.headers["x-recreate-recompute-seconds"])
    return [
        (f"{label}: cold request (miss)", f"{miss.total_s:.2f} s"),
        ("  of which recompute on the worker", f"{recompute:.2f} s"),
        (
            f"{label}: hit, median of {HIT_REPEATS}",
            f"{hit_s:.3f} s",
        ),
        ("  first byte of a hit (median)", f"{first_s * 1000:.0f} ms"),
        (f"{label}: bytes served", f"{hits[-1].size / 1e6:.1f} MB"),
    ]


def run_campaign(api: ApiClient, keys: list[tuple[int, int]]) -> float:
    """Run a campaign to the end; return detectors per minute."""
    start = time.perf_counter()
    created = api.prewarm("bench", keys=keys)
    campaign = api.wait_for_campaign(created["id"])
    seconds = time.perf_counter() - start
    if campaign["counts"]["failed"]:
        sys.exit(f"campaign failed keys: {campaign['failed']}")
    return 60.0 * campaign["counts"]["done"] / seconds


def peak_worker_rss_mb(client: Client) -> float:
    """Return the largest peak RSS of the worker processes, in MB."""
    peaks = client.run(
        lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    return max(peaks.values()) / 1024.0


def main() -> None:
    """Measure and print the service's figures."""
    # This process serves the API (and reads the bodies), as
    # `recreate serve` does: with its heap kept.
    retain_freed_memory()
    ensure_repo()
    keys = covered_keys(CAMPAIGN_KEYS + 3)
    first, probe, spare = keys[-3:]
    campaign_keys = keys[:CAMPAIGN_KEYS]
    rows: list[tuple[str, str]] = []
    with (
        RedisServer(maxmemory="8gb", policy="allkeys-lru") as cache,
        RedisServer(policy="noeviction") as control,
    ):
        with service(cache, control, 1) as (url, api, client):
            rows += hit_rows(url, first, "dp1", {})
            before = cache.client().info("memory")["used_memory"]
            hit, _ = timed_get(url, first)
            etag = hit.headers["etag"]
            _, revalidate_s = timed_get(
                url, first, headers={"If-None-Match": etag}
            )
            rows += [
                ("revalidation (304)", f"{revalidate_s * 1000:.0f} ms"),
                ("Redis memory for it", f"{before / 1e6:.1f} MB"),
            ]
            rows += hit_rows(url, first, COMPRESSED, {"format": COMPRESSED})
            rate_1 = run_campaign(api, campaign_keys)
            peak_1 = peak_worker_rss_mb(client)
        with service(cache, control, 2) as (url, api, client):
            rate_2 = run_campaign(api, campaign_keys)
            _, idle_s = timed_get(url, spare)
            # The campaign's keys again, uncached: it saturates both workers.
            cache.client().flushall()
            created = api.prewarm("load", keys=keys[:6])
            time.sleep(3.0)  # both workers busy with campaign tasks
            _, busy_s = timed_get(url, probe)
            left = api.campaign(created["id"])
            api.cancel_campaign(created["id"])
            api.wait_for_campaign(created["id"])
            peak_2 = peak_worker_rss_mb(client)
    efficiency = rate_2 / (2 * rate_1)
    rows += [
        ("campaign, 1 worker process", f"{rate_1:.2f} detectors/min"),
        ("campaign, 2 worker processes", f"{rate_2:.2f} detectors/min"),
        ("scaling efficiency 1 -> 2", f"{efficiency:.0%}"),
        ("interactive request, idle (2 workers)", f"{idle_s:.2f} s"),
        ("interactive request, campaign running", f"{busy_s:.2f} s"),
        (
            "  campaign keys still queued then",
            str(left["counts"]["queued"]),
        ),
        ("peak RSS of a worker process", f"{max(peak_1, peak_2):.0f} MB"),
    ]
    print(f"\nservice on {CAMPAIGN_KEYS}+ full-size (4072x4000) detectors")
    print("-" * 64)
    for name, value in rows:
        print(f"{name:<40} {value:>22}")


if __name__ == "__main__":
    main()
