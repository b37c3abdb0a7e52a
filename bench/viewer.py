"""Viewer benchmark: preview rendering, preview requests, first paint.

Prints three tables:

* rendering, in this process, of a synthetic full-size detector
  (4072x4000, LSST-like noise, stars and masks): the PNG of the
  difference (zscale, asinh; reduced by 4x4 block means to 1018x1000),
  the triplet (three 582x572 panels), and ``fits_to_png`` of a 51x51
  region and of the whole detector's DP1 FITS bytes;
* the service on the ``demo`` repository (``data/demo-repo``,
  1018x1000 detectors; simulated on first use; ``BENCH_DEMO_REPO``
  names another, e.g. the full-size ``data/comcam-repo``): a cold PNG
  preview (recreation), the same preview and the triplet once cached
  (median of 5), the geometry JSON, and the PNG of a detector whose
  FITS was just recreated (zscale: cached beside it; asinh: rendered
  from the cached FITS);
* the viewer page in Debian's Chromium (Playwright, offline flags):
  first contentful paint and the time to the table of a visit search,
  median of 5 fresh pages.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from served import served_api

from cache import RedisServer
from recreate.exposure import Exposure, MaskPlanes
from recreate.io.difference import difference_bytes
from recreate.preview import fits_to_png, image_png
from recreate.preview.png import encode_png
from recreate.preview.render import render_triplet
from tests.support.browser import launched_chromium, offline_page
from tests.support.exposures import tan_sip_wcs

REPO = Path(os.environ.get("BENCH_DEMO_REPO", "data/demo-repo"))
REPEATS = 5
SHAPE = (4000, 4072)


def median_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    """Return the median wall time of ``run`` (after one warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_detector() -> Exposure:
    """Return a 4k detector: noise, stars, saturated cores, bad columns."""
    rng = np.random.default_rng(1)
    height, width = SHAPE
    image = rng.normal(0.0, 30.0, SHAPE).astype(np.float32)
    planes = MaskPlanes.afw_default().with_planes(
        "SAT_TEMPLATE", "DETECTED", "DETECTED_NEGATIVE"
    )
    mask = np.zeros(SHAPE, np.int32)
    yy, xx = np.mgrid[-7:8, -7:8]
    for y, x in zip(
        rng.integers(10, height - 10, 3000),
        rng.integers(10, width - 10, 3000),
        strict=True,
    ):
        flux = rng.lognormal(6, 1.5)
        image[y - 7 : y + 8, x - 7 : x + 8] += flux * np.exp(
            -(xx**2 + yy**2) / 4.5
        )
        mask[y - 3 : y + 4, x - 3 : x + 4] |= planes.value("DETECTED")
    mask[:, 1500:1502] |= planes.value("BAD")
    image[:20] = np.nan
    mask[:20] |= planes.value("NO_DATA")
    return Exposure(
        image=image,
        variance=np.full(SHAPE, 900.0, np.float32),
        mask=mask,
        mask_planes=planes,
        wcs=tan_sip_wcs(),
    )


def rendering_table() -> None:
    """Print the renderer's timings on a full-size detector."""
    exposure = synthetic_detector()
    image, mask, planes = exposure.image, exposure.mask, exposure.mask_planes
    whole = difference_bytes(exposure, {}, compress=False)
    cut = Exposure(
        image=image[1000:1051, 1000:1051].copy(),
        variance=exposure.variance[1000:1051, 1000:1051].copy(),
        mask=mask[1000:1051, 1000:1051].copy(),
        mask_planes=planes,
        wcs=exposure.wcs,
    )
    stamp = difference_bytes(cut, {}, compress=False)
    template = image * 0.5
    cases = {
        "difference PNG, zscale (4072x4000 -> 1018x1000)": lambda: image_png(
            image, "zscale", mask=mask, planes=planes
        ),
        "difference PNG, asinh": lambda: image_png(
            image, "asinh", mask=mask, planes=planes
        ),
        "triplet PNG (3 x 582x572)": lambda: encode_png(
            render_triplet(
                image, template, image, "zscale", mask=mask, planes=planes
            )
        ),
        "fits_to_png of a 51x51 region": lambda: fits_to_png(stamp),
        f"fits_to_png of the full DP1 FITS ({len(whole) >> 20} MB)": lambda: (
            fits_to_png(whole)
        ),
    }
    print("\nPreview rendering (this process, one core's work)")
    print(f"{'case':58} {'median ms':>10}")
    for name, run in cases.items():
        print(f"{name:58} {1000 * median_seconds(run):10.1f}")


def ensure_repo() -> None:
    """Simulate the demo repository if it is missing."""
    if (REPO / "butler.yaml").exists():
        return
    from recreate.simulate.repository import simulate_repository

    print(f"simulating the demo repository in {REPO} ...")
    simulate_repository(REPO, "demo", 1, jobs=2)


def first_key(url: str) -> tuple[int, int]:
    """Return a key of the newest visit whose template covers it."""
    visits = httpx.get(f"{url}/api/v1/visits").json()["visits"]
    for visit in visits:
        listing = httpx.get(f"{url}/api/v1/visits/{visit['visit']}").json()
        for detector in listing["detectors"]:
            key = (visit["visit"], detector["detector"])
            probe = httpx.head(
                f"{url}/api/v1/diffims/{key[0]}/{key[1]}",
                params={"format": "png"},
                timeout=600,
            )
            if probe.status_code == 200:
                return key
    msg = "no recreatable key in the demo repository"
    raise LookupError(msg)


def service_table(
    url: str, key: tuple[int, int], flush: Callable[[], object]
) -> None:
    """Print preview request timings against the running service."""
    base = f"{url}/api/v1/diffims/{key[0]}/{key[1]}"
    with httpx.Client(timeout=600) as http:
        start = time.perf_counter()
        cold = http.get(base, params={"format": "png", "stretch": "asinh"})
        cold_s = time.perf_counter() - start
        rows = [
            (
                f"cold PNG, asinh (recreation: {cold.headers['x-cache']})",
                cold_s,
            ),
            (
                "cached PNG preview (hit)",
                median_seconds(
                    lambda: http.get(base, params={"format": "png"})
                ),
            ),
            (
                "cached triplet PNG (hit)",
                median_seconds(
                    lambda: http.get(base, params={"format": "png-triplet"})
                ),
            ),
            (
                "geometry JSON",
                median_seconds(lambda: http.get(f"{base}/geometry")),
            ),
            (
                "zscale PNG of a cached detector (cached beside its FITS)",
                after_fits(http, base, flush, "zscale"),
            ),
            (
                "asinh PNG of a cached detector (rendered from its FITS)",
                after_fits(http, base, flush, "asinh"),
            ),
        ]
    print(f"\nPreviews over HTTP ({REPO.name}, key {key})")
    print(f"{'request':58} {'ms':>10}")
    for name, seconds in rows:
        print(f"{name:58} {1000 * seconds:10.1f}")


def after_fits(
    http: httpx.Client, base: str, flush: Callable[[], object], stretch: str
) -> float:
    """Return the median seconds of a PNG asked for once its FITS is.

    Each round flushes the cache, asks for the FITS (a recreation that
    caches the zscale preview beside it) and times the PNG: a hit for
    zscale, a render from the cached FITS in the worker for asinh.
    """
    times = []
    for _ in range(REPEATS):
        flush()
        http.get(base, params={"format": "dp1"}).raise_for_status()
        start = time.perf_counter()
        response = http.get(base, params={"format": "png", "stretch": stretch})
        times.append(time.perf_counter() - start)
        hit = response.headers["x-cache"] == "hit"
        rendered = response.headers.get("x-recreate-rendered-from") == "dp1"
        if not (hit or rendered):
            msg = "the PNG was recreated, not taken from beside its FITS"
            raise RuntimeError(msg)
    return statistics.median(times)


#: The page's first contentful paint (ms), once Chromium has recorded it:
#: ``goto`` returns at the load event, which may come before the entry.
FIRST_PAINT = """() => new Promise((resolve, reject) => {
  const found = (entries) => entries.find(
    (e) => e.name === "first-contentful-paint");
  new PerformanceObserver((list, observer) => {
    const paint = found(list.getEntries());
    if (paint) { observer.disconnect(); resolve(paint.startTime); }
  }).observe({type: "paint", buffered: true});
  setTimeout(() => reject(new Error("no first contentful paint in 10 s")),
             10000);
})"""


def page_table(url: str, key: tuple[int, int]) -> None:
    """Print the viewer's first paint and its visit search, in Chromium."""
    paints, tables = [], []
    with launched_chromium() as browser:
        for _ in range(REPEATS + 1):
            with offline_page(browser) as (page, log):
                page.goto(f"{url}/")
                paints.append(page.evaluate(FIRST_PAINT))
                start = time.perf_counter()
                page.fill("#visit", str(key[0]))
                page.click("#by-visit button")
                page.locator("#table tbody tr").first.wait_for()
                tables.append(1000 * (time.perf_counter() - start))
                if log.outside:
                    msg = f"the page reached outside: {log.outside}"
                    raise RuntimeError(msg)
    print("\nViewer page (Chromium, median of 5 fresh pages after one)")
    print(f"{'what':58} {'ms':>10}")
    print(
        f"{'first contentful paint':58} {statistics.median(paints[1:]):10.1f}"
    )
    search = statistics.median(tables[1:])
    print(f"{'visit search to the table':58} {search:10.1f}")


def main() -> int:
    """Run the three benchmarks."""
    rendering_table()
    ensure_repo()
    with (
        RedisServer(maxmemory="4gb", policy="allkeys-lru") as cache,
        RedisServer(policy="noeviction") as control,
        served_api(REPO, cache, control, threads=2) as (url, _),
    ):
        key = first_key(url)
        # Cold means cold: no product, no stored kernel.
        for server in (cache, control):
            server.client().flushall()
        service_table(url, key, cache.client().flushall)
        page_table(url, key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
