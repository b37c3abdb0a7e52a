"""SIAv2 and DataLink through pyvo and as documents, on the ci repository.

A real service (API thread, real Redis, real Dask), a real client (pyvo),
every VOTable parsed by astropy in strict mode.
"""

from __future__ import annotations

import pytest
from pyvo.dal import SIA2Service

from recreate.butler import find_inputs, open_butler
from recreate.discovery import find_footprints
from tests.workers.ivoa.support import (
    box_of,
    planes,
    product_window,
    query_status,
    redis_is_empty,
    table,
    xy0_of,
)

SIA = "/api/sia/query"
LINKS = "/api/datalink/links"


@pytest.fixture(scope="module")
def footprints(ci_repo):
    return find_footprints(open_butler(str(ci_repo.root)))


def ivo_id(visit, detector, label="repo"):
    return f"ivo://recreate.lsst/{label}?visit={visit}&detector={detector}"


def test_pyvo_finds_follows_and_cuts(api_url, http, full_key, footprints):
    service = SIA2Service(f"{api_url}/api/sia")
    first = next(f for f in footprints if (f.visit, f.detector) == full_key)
    ra, dec = first.centre
    results = service.search(pos=(ra, dec, 0.001))
    rows = {
        (int(r["lsst_visit"]), int(r["lsst_detector"])): r for r in results
    }
    assert full_key in rows
    record = rows[full_key]
    assert record["calib_level"] == 3
    assert record["dataproduct_subtype"] == "lsst.difference_image"
    assert (
        record["access_format"] == "application/x-votable+xml;content=datalink"
    )
    links = record.getdatalink()
    by_semantics = {}
    for link in links:
        by_semantics.setdefault(link.semantics, []).append(link)
    assert set(by_semantics) == {"#this", "#preview", "#progenitor", "#cutout"}
    visit, detector = full_key
    assert by_semantics["#this"][0].access_url.endswith(
        f"/api/v1/diffims/{visit}/{detector}"
    )
    assert by_semantics["#preview"][0].content_type == "image/png"
    cutout = by_semantics["#cutout"][0]
    stream = cutout.processed(circle=(ra, dec, 3 / 3600))
    data = stream.read()
    # The same pixels as the full product at the cutout's box.
    full = http.get(f"/api/v1/diffims/{visit}/{detector}").content
    response = http.get(
        "/api/cutout/sync",
        params={
            "ID": record["obs_publisher_did"],
            "CIRCLE": f"{ra} {dec} {3 / 3600}",
        },
    )
    assert response.content == data
    expected = product_window(full, box_of(response), xy0_of(full))
    for name, plane in planes(data).items():
        assert plane.shape == expected[name].shape
        assert plane.tobytes() == expected[name].tobytes()


def test_sia_rows_are_obscore_rows_of_recreatable_images(
    http, footprints, ci_repo
):
    response = http.get(SIA)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/x-votable+xml"
    )
    rows = table(response)
    keys = {(int(r["lsst_visit"]), int(r["lsst_detector"])) for r in rows}
    assert keys == {(f.visit, f.detector) for f in footprints}
    butler = open_butler(str(ci_repo.root))
    for row in rows[:3]:
        # Each row's image can be recreated: the Butler finds its inputs.
        find_inputs(butler, int(row["lsst_visit"]), int(row["lsst_detector"]))
    row = rows[0]
    assert row["dataproduct_type"] == "image"
    assert row["obs_publisher_did"] == ivo_id(
        row["lsst_visit"], row["lsst_detector"]
    )
    assert row["em_min"] == pytest.approx(552e-9)
    assert row["t_max"] > row["t_min"] > 60000
    assert len(row["s_region"]) == 8
    assert "/api/datalink/links?ID=ivo%3A%2F%2F" in row["access_url"]


@pytest.mark.parametrize(
    ("params", "matches"),
    [
        ({"BAND": "6e-7 6.1e-7"}, True),
        ({"BAND": "4e-7 4.5e-7"}, False),
        ({"BAND": ["4e-7 4.5e-7", "6e-7 +Inf"]}, True),
        ({"TIME": "60000 70000"}, True),
        ({"TIME": "50000 50001"}, False),
        ({"CALIB": "3"}, True),
        ({"CALIB": "2"}, False),
        ({"DPTYPE": "cube"}, False),
        ({"INSTRUMENT": "LSSTComCam"}, True),
        ({"COLLECTION": "repo"}, True),
        ({"COLLECTION": "other"}, False),
        ({"EXPTIME": "29 31"}, True),
        ({"POL": "I"}, False),
        ({"POS": "RANGE 200 201 10 11"}, False),
    ],
)
def test_sia_constraints(http, params, matches):
    rows = table(http.get(SIA, params=params))
    assert (len(rows) > 0) == matches


def test_sia_post_id_maxrec_and_shapes(http, footprints):
    first = footprints[0]
    ra, dec = first.centre
    by_polygon = table(
        http.post(
            SIA,
            data={
                "POS": "POLYGON "
                + " ".join(f"{c}" for v in first.vertices for c in v)
            },
        )
    )
    by_circle = table(
        http.post(SIA, data={"pos": f"CIRCLE {ra} {dec} 0.0001"})
    )
    key = (first.visit, first.detector)
    for rows in (by_polygon, by_circle):
        assert key in {
            (int(r["lsst_visit"]), int(r["lsst_detector"])) for r in rows
        }
    one = table(http.get(SIA, params={"ID": ivo_id(*key)}))
    assert [(int(r["lsst_visit"]), int(r["lsst_detector"])) for r in one] == [
        key
    ]
    assert (
        len(table(http.get(SIA, params={"ID": ivo_id(*key, label="x")}))) == 0
    )
    limited = http.get(SIA, params={"MAXREC": "2"})
    assert len(table(limited)) == 2
    assert "OVERFLOW" in limited.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"POS": "CIRCLE 10 20"}, "POS must be 3 numbers"),
        ({"POS": "SQUARE 1 2 3"}, "must start with CIRCLE, RANGE or POLYGON"),
        (
            {"POS": "POLYGON 53 -28 53.1 -27.9 53.1 -28 53 -27.9"},
            "crosses itself",
        ),
        ({"POS": "CIRCLE 10 95 1"}, "dec must be in"),
        ({"BAND": "7e-7 6e-7"}, "lower bound"),
        ({"MAXREC": "-1"}, "MAXREC must be at least 0"),
        ({"RESPONSEFORMAT": "text/csv"}, "RESPONSEFORMAT 'text/csv'"),
        (
            {"RESPONSEFORMAT": ["votable", "votable"]},
            "MultiValuedParamNotSupported",
        ),
    ],
)
def test_bad_sia_queries_are_votable_errors(
    http, cache_redis, control_redis, params, message
):
    response = http.get(SIA, params=params)
    assert response.status_code == 400
    status, text = query_status(response)
    assert status == "ERROR"
    assert message in text
    assert redis_is_empty(cache_redis, control_redis)


def test_vosi_documents(http):
    for base in ("/api/sia", "/api/datalink", "/api/cutout"):
        capabilities = http.get(f"{base}/capabilities")
        assert capabilities.status_code == 200
        assert "ivo://ivoa.net/std/VOSI#availability" in capabilities.text
        availability = http.get(f"{base}/availability")
        assert "<available>true</available>" in availability.text


def test_datalink_rows_per_id_with_errors_as_rows(
    http, full_key, uncovered_key, ci_repo, cache_redis, control_redis
):
    visit, detector = full_key
    response = http.post(
        LINKS,
        data={
            "ID": [ivo_id(*full_key), ivo_id(99, 0), "not-an-id"],
            "VISIT": [str(uncovered_key[0])],
            "DETECTOR": [str(uncovered_key[1])],
        },
    )
    assert response.status_code == 200
    rows = table(response)
    by_id = {}
    for row in rows:
        by_id.setdefault(row["ID"], []).append(row)
    good = by_id[ivo_id(*full_key)]
    inputs = find_inputs(open_butler(str(ci_repo.root)), visit, detector)
    progenitors = [r for r in good if r["semantics"] == "#progenitor"]
    assert [r["local_semantics"] for r in progenitors] == [
        "visit_image",
        *["template_coadd"] * len(inputs.templates),
    ]
    described = " ".join(r["description"] for r in progenitors)
    for dataset_id in inputs.dataset_ids:
        assert dataset_id in described
    assert not any(r["semantics"] == "#derivation" for r in good)
    cutout = next(r for r in good if r["semantics"] == "#cutout")
    assert cutout["service_def"] == "cutout-sync"
    (missing,) = by_id[ivo_id(99, 0)]
    assert missing["error_message"].startswith("NotFoundFault: visit 99")
    (malformed,) = by_id["not-an-id"]
    assert malformed["error_message"].startswith("UsageError: ID 'not-an-id'")
    # VISIT/DETECTOR name data IDs directly.
    assert {r["semantics"] for r in by_id[ivo_id(*uncovered_key)]} >= {
        "#this",
        "#cutout",
    }
    # Resolving inputs writes nothing: no recreation was asked for.
    assert redis_is_empty(cache_redis, control_redis)
    # Once the solution is stored, #derivation links it.
    solution = http.get(f"/api/v1/solutions/{visit}/{detector}")
    assert solution.status_code == 200
    again = table(http.get(LINKS, params={"ID": ivo_id(*full_key)}))
    (derivation,) = [r for r in again if r["semantics"] == "#derivation"]
    assert derivation["content_length"] == len(solution.content)
    linked = http.get(derivation["access_url"])
    assert linked.content == solution.content
    assert linked.headers["x-cache"] == "hit"


def test_too_many_ids_is_a_votable_error(http):
    response = http.get(
        LINKS, params={"ID": [ivo_id(1, d) for d in range(101)]}
    )
    assert response.status_code == 400
    assert query_status(response) == (
        "ERROR",
        "UsageError: 101 IDs in one request; at most 100",
    )
    missing = http.get(LINKS)
    assert (
        query_status(missing)[1]
        == "UsageError: give ID (or VISIT and DETECTOR)"
    )
