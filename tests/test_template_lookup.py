"""Template patches kept per band and sky cell: the registry's answer."""

import pytest

import recreate.butler as butler_module
from recreate.butler import find_inputs, open_butler
from recreate.template_lookup import TemplateLookup


@pytest.fixture(scope="module")
def butler(ci_repo):
    return open_butler(str(ci_repo.root))


@pytest.fixture(scope="module")
def keys(ci_repo):
    covered = [k for k, f in sorted(ci_repo.coverage.items()) if f > 0]
    return [tuple(map(int, k.split("/"))) for k in covered]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_every_key_finds_the_registrys_patches_with_fewer_queries(
    butler, keys
):
    lookup = TemplateLookup(lifetime=60.0)
    for key in keys:
        assert find_inputs(butler, *key, templates=lookup) == find_inputs(
            butler, *key
        )
    # The CI repository's detectors share a few cells per band.
    assert 0 < lookup.queries < len(keys)
    queries = lookup.queries
    again = [find_inputs(butler, *key, templates=lookup) for key in keys]
    assert lookup.queries == queries
    assert again == [find_inputs(butler, *key) for key in keys]


def test_a_cell_is_asked_again_once_it_expires(butler, keys):
    clock = Clock()
    lookup = TemplateLookup(lifetime=10.0, clock=clock)
    key = keys[0]
    find_inputs(butler, *key, templates=lookup)
    find_inputs(butler, *key, templates=lookup)
    assert lookup.queries == 1
    clock.now += 10.0
    find_inputs(butler, *key, templates=lookup)
    assert lookup.queries == 2
    lookup.forget()
    find_inputs(butler, *key, templates=lookup)
    assert lookup.queries == 3


def test_nothing_is_kept_without_a_lifetime_or_room(butler, keys):
    never = TemplateLookup(lifetime=0.0)
    for _ in range(2):
        find_inputs(butler, *keys[0], templates=never)
    assert never.queries == 2
    from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

    band = find_inputs(butler, *keys[0]).band
    one_cell = TemplateLookup(lifetime=60.0, cells_kept=1)
    # Two small regions 2 deg apart: two cells, one kept at a time.
    first, second = (
        Circle(
            UnitVector3d(LonLat.fromDegrees(ra, 0.0)), Angle.fromDegrees(0.01)
        )
        for ra in (10.0, 12.0)
    )
    query = butler_module._overlapping_templates
    for region in (first, first, second, first):
        one_cell.overlapping(butler, band, region, query)
    assert one_cell.queries == 3


def test_a_region_larger_than_its_cell_is_asked_for_directly(butler, keys):
    from lsst.sphgeom import Angle, Circle

    found = find_inputs(butler, *keys[0])
    ref = butler_module._visit_image_with_records(
        butler, found.instrument, *keys[0]
    )
    centre = (
        ref.dataId.records["visit_detector_region"]
        .region.getBoundingCircle()
        .getCenter()
    )
    # Much larger than any cell's circle: not inside it.
    region = Circle(centre, Angle.fromDegrees(5.0))
    asked = []

    def query(butler, band, where):
        asked.append(where)
        return butler_module._overlapping_templates(butler, band, where)

    lookup = TemplateLookup(lifetime=60.0)
    for _ in range(2):
        refs = lookup.overlapping(butler, found.band, region, query)
    assert asked == [region, region]
    assert lookup.queries == 2
    direct = butler_module._overlapping_templates(butler, found.band, region)
    assert {r.id for r in refs} == {r.id for r in direct}
    assert len(refs) > len(found.templates)
    order = [(int(r.dataId["tract"]), int(r.dataId["patch"])) for r in refs]
    assert order == sorted(order)
