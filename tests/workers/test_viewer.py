"""The viewer page and the docs pages, in a real browser, offline.

Debian's Chromium through Playwright (`tests.support.browser`) against
the real service in a thread on the ``ci`` repository: the visit listing
and previews, position search through SIA, a click's stamp through the
SODA descriptor DataLink gives, and its light curve through the stamps
service.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from recreate.butler import open_butler
from recreate.discovery import covering
from recreate.preview import fits_to_png
from tests.support.browser import launched_chromium, offline_page
from tests.support.exposures import tan_sip_wcs

#: Seconds a page may wait for a recreation (a cold ci detector).
RECREATION_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, api_url):
    with offline_page(browser) as (opened, log):
        opened.set_default_timeout(RECREATION_MS)
        yield opened, log
        assert log.outside == [], "the page reached outside the service"
        assert log.errors == [], "the page raised JavaScript errors"


def test_the_page_paints_and_offers_the_visits(page, api_url, ci_repo):
    opened, _ = page
    response = opened.goto(api_url + "/")
    assert response.status == 200
    assert opened.locator("h1").inner_text().startswith("recreate")
    # goto returns at the load event, which may come before the paint.
    opened.wait_for_function(
        "performance.getEntriesByName('first-contentful-paint').length > 0"
    )
    paint = opened.evaluate(
        "performance.getEntriesByName('first-contentful-paint')"
        ".map(e => e.startTime)"
    )
    assert len(paint) == 1 and paint[0] > 0
    visits = {int(key.split("/")[0]) for key in ci_repo.coverage}
    opened.wait_for_function(
        f"document.querySelectorAll('#visits option').length == {len(visits)}"
    )


def _search_visit(opened, api_url: str, visit: int) -> Any:
    """Search a visit on a fresh page; return the table's rows."""
    opened.goto(api_url + "/")
    opened.fill("#visit", str(visit))
    opened.click("#by-visit button")
    return opened.locator("#table tbody tr")


def _row_of(opened, rows, detector: int) -> Any:
    """Return the table row of a detector."""
    return rows.filter(
        has=opened.locator(f"td:nth-child(2):text-is('{detector}')")
    )


def test_a_visit_search_shows_previews_and_working_links(
    page, api_url, http, full_key, ci_repo
):
    opened, _ = page
    visit, detector = full_key
    rows = _search_visit(opened, api_url, visit)
    detectors = [k for k in ci_repo.coverage if k.startswith(f"{visit}/")]
    rows.nth(len(detectors) - 1).wait_for()
    assert rows.count() == len(detectors)
    _row_of(opened, rows, detector).locator("button").click()
    opened.wait_for_function(
        "document.getElementById('preview').complete && "
        "document.getElementById('preview').naturalWidth > 0"
    )
    geometry = http.get(f"/api/v1/diffims/{visit}/{detector}/geometry").json()
    layout = geometry["previews"]["png-triplet"]
    assert (
        opened.evaluate("document.getElementById('preview').naturalWidth")
        == layout["width"]
    )
    links = opened.locator("#links a[data-kind=fits], #links a[data-kind=png]")
    links.first.wait_for()
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert {h.split("format=")[1].split("&")[0] for h in hrefs} >= {
        "dp1",
        "dp1-compressed",
        "lsst-images",
        "png",
        "png-triplet",
    }
    for href in hrefs:
        response = http.get(href)
        assert response.status_code == 200, (href, response.text[:200])
    # A click on the difference panel: the page's sky position is the
    # product's WCS at that pixel.
    preview = opened.locator("#preview")
    scale = preview.bounding_box()["width"] / layout["width"]
    px, py = 2 * (layout["panel_width"] + layout["gap"]) + 37, 58
    preview.click(position={"x": (px + 0.5) * scale, "y": (py + 0.5) * scale})
    position = opened.locator("#position")
    position.wait_for()
    x, y, ra, dec = (
        float(position.get_attribute(f"data-{k}"))
        for k in ("x", "y", "ra", "dec")
    )
    # The clicked preview pixel's block (y flipped), within the rounding
    # of a click to whole screen pixels.
    centre = (layout["factor"] - 1) / 2
    assert abs(x - (37 * layout["factor"] + centre)) <= layout["factor"]
    flipped = (layout["panel_height"] - 1 - py) * layout["factor"] + centre
    assert abs(y - flipped) <= layout["factor"]
    expected = WCS(geometry["wcs"]).all_pix2world(x, y, 0)
    assert ra == pytest.approx(float(expected[0]), abs=1e-8)
    assert dec == pytest.approx(float(expected[1]), abs=1e-8)


def test_the_page_wcs_is_astropy_wcs(page, api_url):
    opened, _ = page
    opened.goto(api_url + "/")
    wcs = tan_sip_wcs()
    cards = dict(wcs.to_header(relax=True))
    rng = np.random.default_rng(11)
    points = rng.uniform(-100, 4100, (25, 2)).tolist()
    sky = opened.evaluate(
        """async ([cards, points]) => {
            const wcs = await import('/viewer/wcs.js');
            return points.map(([x, y]) => wcs.pixToSky(cards, x, y));
        }""",
        [cards, points],
    )
    xs, ys = np.array(points).T
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    assert np.allclose(np.array(sky), np.column_stack([ra, dec]), atol=1e-9)


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", ".swagger-ui .info .title"),
        ("/redoc", "redoc h1, .api-content h1"),
    ],
)
def test_the_api_docs_render_offline(page, api_url, path, rendered):
    opened, log = page
    opened.goto(api_url + path)
    title = opened.locator(rendered).first
    title.wait_for(timeout=30_000)
    assert "recreate" in title.inner_text()
    assert log.outside == []


def test_a_position_search_lists_difference_images(
    page, api_url, http, full_key
):
    opened, _ = page
    geometry = http.get(
        "/api/v1/diffims/{}/{}/geometry".format(*full_key)
    ).json()
    ra, dec = geometry["center"]
    opened.goto(api_url + "/")
    opened.fill("#ra", str(ra))
    opened.fill("#dec", str(dec))
    opened.fill("#radius", "0.001")
    opened.click("#by-position button")
    row = opened.locator("#table tbody tr").first
    row.wait_for()
    cells = row.locator("td")
    keys = {
        (
            int(r.locator("td").nth(0).inner_text()),
            int(r.locator("td").nth(1).inner_text()),
        )
        for r in opened.locator("#table tbody tr").all()
    }
    assert tuple(full_key) in keys
    assert cells.count() == 7


def test_a_click_gives_a_stamp_and_a_light_curve(
    page, api_url, http, full_key, ci_repo
):
    opened, _ = page
    visit, detector = full_key
    rows = _search_visit(opened, api_url, visit)
    _row_of(opened, rows, detector).locator("button").click()
    opened.wait_for_function(
        "document.getElementById('preview').naturalWidth > 0"
    )
    opened.locator("#links a").first.wait_for()
    # The inputs DataLink names are listed; their file: URIs are no links.
    inputs = opened.locator("#links li:not(:has(a))")
    assert "visit_image" in inputs.first.inner_text()
    preview = opened.locator("#preview")
    box = preview.bounding_box()
    preview.click(position={"x": box["width"] * 5 / 6, "y": box["height"] / 2})
    position = opened.locator("#position")
    ra, dec = (
        float(position.get_attribute(f"data-{k}")) for k in ("ra", "dec")
    )
    opened.wait_for_function(
        "document.getElementById('stamp').naturalWidth > 0"
    )
    # The stamp is SODA's PNG, asked for with the descriptor's ID (the
    # #cutout row's) and defaults, as the FITS link beside it.
    stamp = opened.locator("#stamp").get_attribute("src")
    cutout = opened.locator("#links a[data-kind=cutout]").get_attribute("href")
    assert stamp.startswith(api_url + "/api/cutout/sync?")
    params = dict(parse_qsl(urlsplit(stamp).query))
    assert params["ID"].startswith(
        f"ivo://recreate.lsst/repo?visit={visit}&detector={detector}"
    )
    assert params["CUTOUTDETAIL"] == "Exposure"
    assert params["RESPONSEFORMAT"] == "image/png"
    assert dict(parse_qsl(urlsplit(cutout).query)) == {
        **params,
        "RESPONSEFORMAT": "application/fits",
    }
    fits_cutout = http.get(cutout)
    assert fits_cutout.status_code == 200
    assert http.get(stamp).content == fits_to_png(fits_cutout.content)
    # The light curve: every epoch of the clicked position, by time.
    opened.wait_for_function(
        "document.getElementById('lightcurve').naturalWidth > 0"
    )
    epochs = covering(open_butler(str(ci_repo.root)), ra, dec)
    assert len(epochs) > 1
    status = opened.locator("#lc-status").inner_text()
    assert status.startswith(f"Light curve: {len(epochs)} epoch")
    assert opened.locator("#lc-progress").is_hidden()
    strip = opened.locator("#lightcurve")
    assert strip.evaluate("img => img.naturalHeight") == 51
    hrefs = [
        a.get_attribute("href") for a in opened.locator("#lc-links a").all()
    ]
    assert [h.rsplit("/", 1)[1] for h in hrefs] == ["fits", "png"]
    with fits.open(io.BytesIO(http.get(hrefs[0]).content)) as series:
        table = series["EPOCHS"].data
        kept = list(zip(table["VISIT"], table["DETECTOR"], strict=True))
    assert kept == [(f.visit, f.detector) for f in epochs]
