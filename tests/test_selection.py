"""Campaign selections resolved against a real simulated repository."""

from __future__ import annotations

import math

import pytest

from recreate.butler import open_butler
from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    PayloadTooLargeError,
)
from recreate.selection import Selection
from recreate.selection_query import select_keys

ARCSEC = 1.0 / 3600.0


@pytest.fixture(scope="module")
def butler(ci_repo):
    return open_butler(str(ci_repo.root))


@pytest.fixture(scope="module")
def all_keys(ci_repo):
    """Every (visit, detector) of the repository, from the simulator."""
    keys = sorted(tuple(map(int, key.split("/"))) for key in ci_repo.coverage)
    assert len(keys) > 20
    return keys


@pytest.fixture(scope="module")
def visits(all_keys):
    found = sorted({visit for visit, _ in all_keys})
    assert len(found) >= 5
    return found


def _day_obs(visit):
    # Simulated visit ids are day_obs * 100000 + a sequence number.
    return visit // 100000


def _select(butler, **criteria):
    return select_keys(butler, Selection(**criteria))


def test_every_key_has_a_visit_image(butler, all_keys):
    stored = sorted(
        (int(ref.dataId["visit"]), int(ref.dataId["detector"]))
        for ref in butler.query_datasets("visit_image")
    )
    assert stored == all_keys
    assert _select(butler, band="r") == all_keys


def test_visits_alone(butler, all_keys, visits):
    chosen = (visits[3], visits[0])
    got = _select(butler, visits=chosen)
    assert got == [k for k in all_keys if k[0] in chosen]
    assert got == sorted(set(got))
    assert {v for v, _ in got} == set(chosen)


def test_visit_range_is_inclusive_at_both_ends(butler, all_keys, visits):
    low, high = visits[1], visits[3]
    got = _select(butler, visit_min=low, visit_max=high)
    assert {v for v, _ in got} == {visits[1], visits[2], visits[3]}
    assert got == [k for k in all_keys if low <= k[0] <= high]
    single = _select(butler, visit_min=low, visit_max=low)
    assert single == [k for k in all_keys if k[0] == low]


def test_open_ended_visit_bounds(butler, all_keys, visits):
    assert _select(butler, visit_min=visits[-2]) == [
        k for k in all_keys if k[0] >= visits[-2]
    ]
    assert _select(butler, visit_max=visits[1]) == [
        k for k in all_keys if k[0] <= visits[1]
    ]


def test_day_obs_range(butler, all_keys, visits):
    days = sorted({_day_obs(v) for v in visits})
    assert len(days) >= 3
    first = _select(butler, day_obs_min=days[0], day_obs_max=days[0])
    assert first == [k for k in all_keys if _day_obs(k[0]) == days[0]]
    assert 0 < len(first) < len(all_keys)
    later = select_keys(
        butler, Selection.from_dict({"day_obs_range": [days[1], days[-1]]})
    )
    assert later == [k for k in all_keys if _day_obs(k[0]) >= days[1]]
    assert sorted(first + later) == all_keys


def test_day_obs_range_between_nights_matches_nothing(butler, visits):
    day = _day_obs(visits[0])
    # The night before the first: no visit.
    assert _select(butler, day_obs_max=day - 1) == []


def test_band_without_a_match_is_empty(butler):
    assert _select(butler, band="z") == []
    assert _select(butler, band="nope") == []


def test_detectors_alone(butler, all_keys):
    got = _select(butler, detectors=(8, 0, 4))
    assert got == [k for k in all_keys if k[1] in {0, 4, 8}]
    assert {d for _, d in got} == {0, 4, 8}


def test_criteria_combine_with_and(butler, all_keys, visits):
    day = _day_obs(visits[4])
    got = _select(
        butler,
        visit_min=visits[1],
        day_obs_min=day,
        band="r",
        detectors=(2, 5),
    )
    expected = [
        (v, d)
        for v, d in all_keys
        if v >= visits[1] and _day_obs(v) >= day and d in {2, 5}
    ]
    assert got == expected
    assert 0 < len(expected) < len([k for k in all_keys if k[1] in {2, 5}])
    # A visit list outside the range leaves nothing.
    assert _select(butler, visits=(visits[0],), visit_min=visits[1]) == []


def test_unknown_visits_and_detectors_match_nothing(butler, visits):
    assert _select(butler, visits=(12345,)) == []
    assert _select(butler, visits=(visits[0],), detectors=(99,)) == []


def test_the_instrument_is_checked(butler, all_keys):
    assert _select(butler, instrument="LSSTComCam", detectors=(1,)) == [
        k for k in all_keys if k[1] == 1
    ]
    with pytest.raises(DataNotFoundError, match="'HSC'"):
        _select(butler, instrument="HSC", band="r")


def test_an_empty_selection_is_refused(butler):
    assert Selection().is_empty()
    assert Selection(instrument="LSSTComCam").is_empty()
    with pytest.raises(InvalidRequestError, match="criterion"):
        select_keys(butler, Selection(instrument="LSSTComCam"))


def test_limit(butler, all_keys):
    n = len(all_keys)
    with pytest.raises(PayloadTooLargeError) as raised:
        select_keys(butler, Selection(band="r"), limit=n - 1)
    assert str(raised.value) == (
        f"selection matches {n} keys; at most {n - 1} per campaign"
    )
    assert select_keys(butler, Selection(band="r"), limit=n) == all_keys
    assert select_keys(butler, Selection(band="z"), limit=0) == []
    with pytest.raises(InvalidRequestError, match="-1"):
        select_keys(butler, Selection(band="r"), limit=-1)


# --- Cones: checked against an independent spherical-geometry test ---


def _vec(v):
    return (v.x(), v.y(), v.z())


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a, b):
    return (
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    )


def _unit(a):
    norm = math.sqrt(_dot(a, a))
    return (a[0] / norm, a[1] / norm, a[2] / norm)


def _angle(a, b):
    return math.atan2(math.sqrt(_dot(c := _cross(a, b), c)), _dot(a, b))


def _radec_vector(ra, dec):
    ra, dec = math.radians(ra), math.radians(dec)
    return (
        math.cos(dec) * math.cos(ra),
        math.cos(dec) * math.sin(ra),
        math.sin(dec),
    )


def _distance_deg(point, vertices):
    """Angular distance from a point to a convex polygon (0 inside)."""
    centre = _unit(tuple(sum(c) for c in zip(*vertices, strict=True)))
    best = math.inf
    inside = True
    for a, b in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        normal = _unit(_cross(a, b))
        if _dot(normal, centre) < 0:
            normal = tuple(-c for c in normal)
        side = _dot(normal, point)
        inside = inside and side >= 0
        # Nearest point of the edge's great circle, then clip to the arc.
        foot = _unit(
            tuple(p - side * n for p, n in zip(point, normal, strict=True))
        )
        span = _angle(a, b)
        if abs(_angle(a, foot) + _angle(foot, b) - span) < 1e-12:
            best = min(best, abs(math.asin(max(-1.0, min(1.0, side)))))
        else:
            best = min(best, _angle(point, a), _angle(point, b))
    return 0.0 if inside else math.degrees(best)


def _regions(butler):
    return {
        (int(rec.visit), int(rec.detector)): [
            _vec(v) for v in rec.region.getVertices()
        ]
        for rec in butler.registry.queryDimensionRecords(
            "visit_detector_region"
        )
    }


def _centre_radec(vertices):
    x, y, z = _unit(tuple(sum(c) for c in zip(*vertices, strict=True)))
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(z))


def _expected_in_cone(regions, ra, dec, radius):
    point = _radec_vector(ra, dec)
    return sorted(
        key
        for key, vertices in regions.items()
        if _distance_deg(point, vertices) <= radius
    )


def test_cone_on_a_visit_centre_takes_the_central_cross(butler, visits):
    regions = _regions(butler)
    visit = visits[0]
    ra, dec = _centre_radec(regions[visit, 4])
    # Detectors are 80" x 78" with 1.2" gaps: a 50" cone reaches the
    # four edge neighbours of the central detector, not the corners.
    radius = 50 * ARCSEC
    got = _select(butler, visits=(visit,), cone=(ra, dec, radius))
    assert got == [(visit, d) for d in (1, 3, 4, 5, 7)]
    assert got == [
        k for k in _expected_in_cone(regions, ra, dec, radius) if k[0] == visit
    ]
    # Overlap, not containment: a cone inside one detector selects it.
    tiny = _select(butler, visits=(visit,), cone=(ra, dec, ARCSEC))
    assert tiny == [(visit, 4)]


def test_cone_alone_matches_the_geometry(butler, all_keys, visits):
    regions = _regions(butler)
    assert sorted(regions) == all_keys
    ra, dec = _centre_radec(regions[visits[0], 4])
    for radius in (20 * ARCSEC, 70 * ARCSEC):
        expected = _expected_in_cone(regions, ra, dec, radius)
        assert 0 < len(expected) < len(all_keys)
        selection = Selection.from_dict(
            {"cone": {"ra": ra, "dec": dec, "radius": radius}}
        )
        assert select_keys(butler, selection) == expected


def test_cone_combines_with_detectors(butler, visits):
    regions = _regions(butler)
    ra, dec = _centre_radec(regions[visits[0], 4])
    radius = 70 * ARCSEC
    expected = [
        k
        for k in _expected_in_cone(regions, ra, dec, radius)
        if k[1] in {0, 8}
    ]
    got = _select(butler, detectors=(0, 8), cone=(ra, dec, radius))
    assert got == expected
    assert got


def test_a_tiny_cone_far_away_is_empty(butler):
    assert _select(butler, cone=(200.0, 30.0, 0.001)) == []
    assert _select(butler, cone=(0.0, -89.0, 10.0)) == []


def test_a_repository_without_visit_images(tmp_path):
    from lsst.daf.butler import Butler, CollectionType

    root = str(tmp_path / "empty")
    Butler.makeRepo(root)
    writer = Butler.from_config(root, writeable=True)
    writer.registry.insertDimensionData(
        "instrument",
        {
            "name": "Cam",
            "detector_max": 9,
            "visit_max": 10,
            "exposure_max": 10,
            "visit_system": 0,
            "class_name": "a.Camera",
        },
    )
    with pytest.raises(DataNotFoundError, match="visit_image"):
        _select(open_butler(root), band="r")
    writer.collections.register("run", CollectionType.RUN)
    with pytest.raises(DataNotFoundError, match="visit_image"):
        _select(open_butler(root), band="r")


# --- Parsing ---


ROUND_TRIPS = [
    {"visits": [3, 1, 2]},
    {"visit_range": [5, 9]},
    {"visit_min": 5},
    {"visit_max": 0},
    {"day_obs_range": [20241109, 20241110], "band": "r"},
    {"day_obs_max": 20241231},
    {"detectors": [4], "instrument": "LSSTComCam"},
    {"cone": {"ra": 0, "dec": -90, "radius": 10}},
    {"cone": {"ra": 359.5, "dec": 12.25, "radius": 0.01}, "visits": [7]},
    {
        "instrument": "LSSTComCam",
        "visits": [2, 1, 2],
        "visit_min": 1,
        "visit_max": 2,
        "day_obs_min": 20240101,
        "day_obs_max": 20240102,
        "band": "g",
        "detectors": [8, 0],
        "cone": {"ra": 53.0, "dec": -28.0, "radius": 1.5},
    },
]


@pytest.mark.parametrize("data", ROUND_TRIPS)
def test_round_trip(data):
    selection = Selection.from_dict(data)
    assert not selection.is_empty()
    again = selection.to_dict()
    assert Selection.from_dict(again) == selection
    assert again == Selection.from_dict(again).to_dict()
    # Plain JSON: lists, ints, floats and strings only.
    assert all(not isinstance(v, tuple) for v in again.values())


def test_parsed_values():
    selection = Selection.from_dict(
        {
            "visits": [3, 1, 3],
            "visit_range": [1, 3],
            "day_obs_range": [20241109, 20241110],
            "detectors": [4, 0],
            "cone": {"ra": 10, "dec": -5.5, "radius": 0.5},
        }
    )
    assert selection == Selection(
        visits=(1, 3),
        visit_min=1,
        visit_max=3,
        day_obs_min=20241109,
        day_obs_max=20241110,
        detectors=(0, 4),
        cone=(10.0, -5.5, 0.5),
    )
    assert selection.to_dict() == {
        "visits": [1, 3],
        "visit_min": 1,
        "visit_max": 3,
        "day_obs_min": 20241109,
        "day_obs_max": 20241110,
        "detectors": [0, 4],
        "cone": {"ra": 10.0, "dec": -5.5, "radius": 0.5},
    }


def test_the_constructor_checks_too():
    assert Selection(visits=(5, 2, 5)).visits == (2, 5)
    with pytest.raises(InvalidRequestError, match=r"visits\[0\].*-3"):
        Selection(visits=(-3,))
    with pytest.raises(InvalidRequestError, match="visit_min 9 > visit_max 2"):
        Selection(visit_min=9, visit_max=2)
    with pytest.raises(InvalidRequestError, match=r"cone\.radius"):
        Selection(cone=(1.0, 2.0, 0.0))


REJECTED = [
    # (data, field named, value named)
    ([1, 2], "selection", "[1, 2]"),
    ({}, "selection", "{}"),
    ({"instrument": "LSSTComCam"}, "selection", "LSSTComCam"),
    ({"visit": [1]}, "visit", "visit"),
    ({"band": "r", "colour": "red"}, "field", "colour"),
    ({"visits": 5}, "visits", "5"),
    ({"visits": []}, "visits", "[]"),
    ({"visits": [1, True]}, "visits[1]", "True"),
    ({"visits": ["1"]}, "visits[0]", "'1'"),
    ({"visits": [1.0]}, "visits[0]", "1.0"),
    ({"visits": [-1]}, "visits[0]", "-1"),
    ({"visits": [10**16]}, "visits[0]", str(10**16)),
    ({"visit_range": [9, 5]}, "visit_range", "[9, 5]"),
    ({"visit_range": [5]}, "visit_range", "[5]"),
    ({"visit_range": "5-9"}, "visit_range", "'5-9'"),
    ({"visit_range": [-2, 5]}, "visit_range[0]", "-2"),
    ({"visit_range": [1, 5], "visit_min": 2}, "visit_range", "[1, 5]"),
    ({"visit_min": False}, "visit_min", "False"),
    ({"visit_min": 7, "visit_max": 6}, "visit_min", "7"),
    ({"visit_max": -4}, "visit_max", "-4"),
    ({"day_obs_range": [20241110, 20241109]}, "day_obs_range", "20241110"),
    ({"day_obs_range": [20241109, None]}, "day_obs_range[1]", "None"),
    ({"day_obs_min": -20241109}, "day_obs_min", "-20241109"),
    ({"day_obs_min": 60623}, "day_obs_min", "60623"),
    ({"day_obs_max": 20241332}, "day_obs_max", "20241332"),
    ({"day_obs_max": "20241109"}, "day_obs_max", "'20241109'"),
    ({"band": 3}, "band", "3"),
    ({"band": ""}, "band", "''"),
    ({"instrument": 7, "band": "r"}, "instrument", "7"),
    ({"detectors": [4, -1]}, "detectors[1]", "-1"),
    ({"detectors": [None]}, "detectors[0]", "None"),
    ({"detectors": "4"}, "detectors", "'4'"),
    ({"detectors": [10**4]}, "detectors[0]", "10000"),
    ({"cone": [1, 2, 3]}, "cone", "[1, 2, 3]"),
    ({"cone": {"ra": 1, "dec": 2}}, "cone", "'dec': 2"),
    ({"cone": {"ra": 1, "dec": 2, "radius": 1, "r": 1}}, "cone", "'r': 1"),
    ({"cone": {"ra": 1, "dec": 2, "radius": 0}}, "cone.radius", "0"),
    ({"cone": {"ra": 1, "dec": 2, "radius": -1}}, "cone.radius", "-1"),
    ({"cone": {"ra": 1, "dec": 2, "radius": 10.5}}, "cone.radius", "10.5"),
    ({"cone": {"ra": 1, "dec": 2, "radius": math.nan}}, "cone.radius", "nan"),
    ({"cone": {"ra": 1, "dec": 2, "radius": "1"}}, "cone.radius", "'1'"),
    ({"cone": {"ra": 1, "dec": 100, "radius": 1}}, "cone.dec", "100"),
    ({"cone": {"ra": 1, "dec": -90.5, "radius": 1}}, "cone.dec", "-90.5"),
    ({"cone": {"ra": 360, "dec": 0, "radius": 1}}, "cone.ra", "360"),
    ({"cone": {"ra": -0.5, "dec": 0, "radius": 1}}, "cone.ra", "-0.5"),
    ({"cone": {"ra": True, "dec": 0, "radius": 1}}, "cone.ra", "True"),
]


@pytest.mark.parametrize(
    ("data", "field", "value"),
    REJECTED,
    ids=[f"{i}-{field}" for i, (_, field, _) in enumerate(REJECTED)],
)
def test_from_dict_rejects(data, field, value):
    with pytest.raises(InvalidRequestError) as raised:
        Selection.from_dict(data)
    message = str(raised.value)
    assert field in message
    assert value in message
