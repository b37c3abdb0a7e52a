"""IVOA benchmark: SIAv2 queries, DataLink and SODA cutouts, end to end.

Runs the real service (two redis-servers, a LocalCluster of one worker
process, the API over HTTP) on the demo repository that ``make run``
serves (``data/demo-repo``, simulated on first use: a minute or two)
and prints p50/p95 of:

* a SIAv2 query for every row of the repository, and a cone query;
* a DataLink document of one image (a Butler lookup);
* a SODA sync 51x51 cutout (CIRCLE of 5", FITS) with the full product
  cached (today a cutout is cut from the full product; stored solutions
  replace that with a render of the box), and cold (nothing cached:
  the whole detector is recreated first).

Targets (issue 14): SIA <= 100 ms; SODA 51x51 <= 100 ms p50 with the
solution stored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
from served import served_api

from cache import RedisServer
from recreate.butler import open_butler
from recreate.discovery import find_footprints
from recreate.memory import retain_freed_memory

REPO = Path(os.environ.get("BENCH_DEMO_REPO", "data/demo-repo"))
#: Timed repeats of the fast requests; p50 and p95 are reported.
REPEATS = 40
#: Cold cutouts timed (each recreates a whole detector).
COLD_REPEATS = 3
#: A circle of this radius covers a 51x51 box at 0.2"/pixel.
STAMP_RADIUS_DEGREES = 5.0 / 3600


def ensure_repo() -> None:
    """Simulate the demo repository if it is missing."""
    if (REPO / "butler.yaml").exists():
        return
    from recreate.simulate.repository import simulate_repository

    print(f"simulating the demo repository in {REPO} ...")
    start = time.perf_counter()
    simulate_repository(REPO, "demo", 1, jobs=2)
    print(f"  done in {time.perf_counter() - start:.0f} s")


def timed(
    http: httpx.Client, method: str, path: str, **kwargs: object
) -> float:
    """Return the seconds one request takes (its body read); check it."""
    start = time.perf_counter()
    response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        msg = f"{path}: {response.status_code} {response.text[:200]}"
        raise RuntimeError(msg)
    return seconds


def percentiles(samples: list[float]) -> str:
    """Return 'p50 / p95' in milliseconds."""
    p50, p95 = np.percentile(np.array(samples) * 1000, [50, 95])
    return f"{p50:.0f} / {p95:.0f} ms"


def main() -> None:
    """Measure and print the IVOA faces' figures."""
    retain_freed_memory()
    ensure_repo()
    footprints = find_footprints(open_butler(str(REPO)))
    chosen = footprints[len(footprints) // 2]
    ra, dec = chosen.centre
    identifier = (
        f"ivo://recreate.lsst/{REPO.name}?visit={chosen.visit}"
        f"&detector={chosen.detector}"
    )
    cutout = {"ID": identifier, "CIRCLE": f"{ra} {dec} {STAMP_RADIUS_DEGREES}"}
    rows: list[tuple[str, str]] = []
    with (
        RedisServer(maxmemory="4gb", policy="allkeys-lru") as cache,
        RedisServer(policy="noeviction") as control,
        served_api(REPO, cache, control) as (url, _),
        httpx.Client(base_url=url, timeout=600) as http,
    ):
        # Warm the worker (imports, compiled kernels) and the API.
        timed(http, "GET", "/api/cutout/sync", params=cutout)
        every = [timed(http, "GET", "/api/sia/query") for _ in range(REPEATS)]
        cone = {"POS": f"CIRCLE {ra} {dec} 0.05"}
        cones = [
            timed(http, "GET", "/api/sia/query", params=cone)
            for _ in range(REPEATS)
        ]
        links = [
            timed(
                http,
                "GET",
                "/api/datalink/links",
                params={"ID": identifier},
            )
            for _ in range(REPEATS)
        ]
        warm = [
            timed(http, "GET", "/api/cutout/sync", params=cutout)
            for _ in range(REPEATS)
        ]
        cold = []
        for _ in range(COLD_REPEATS):
            cache.client().flushall()
            cold.append(timed(http, "GET", "/api/cutout/sync", params=cutout))
    rows += [
        (f"SIA query, all {len(footprints)} rows", percentiles(every)),
        ("SIA query, 0.05 deg cone", percentiles(cones)),
        ("DataLink links, one ID", percentiles(links)),
        ("SODA sync 51x51, product cached", percentiles(warm)),
        ("SODA sync 51x51, cold (recreation)", percentiles(cold)),
    ]
    print(f"\nIVOA faces on the demo repository ({REPO})")
    print("-" * 64)
    for name, value in rows:
        print(f"{name:<40} {value:>22}")


if __name__ == "__main__":
    main()
