"""Discovery: the registry's regions say what can be recreated, and where."""

from __future__ import annotations

import pytest

from recreate.butler import find_inputs, open_butler
from recreate.discovery import busiest_position, covering, find_footprints
from recreate.errors import NoOverlapError
from recreate.skyshapes import SkyCircle, SkyRange


@pytest.fixture(scope="module")
def butler(ci_repo):
    return open_butler(str(ci_repo.root))


@pytest.fixture(scope="module")
def everything(butler):
    return find_footprints(butler, recreatable_only=False)


def test_recreatable_is_what_find_inputs_accepts(butler, everything, ci_repo):
    assert len(everything) == len(ci_repo.coverage)
    for footprint in everything:
        try:
            find_inputs(butler, footprint.visit, footprint.detector)
        except NoOverlapError:
            accepted = False
        else:
            accepted = True
        assert footprint.recreatable == accepted, footprint
    recreatable = find_footprints(butler)
    assert {(f.visit, f.detector) for f in recreatable} == {
        (f.visit, f.detector) for f in everything if f.recreatable
    }


def test_footprints_carry_times_filters_and_outlines(everything):
    times = [f.t_min for f in everything]
    assert times == sorted(times)
    for footprint in everything:
        assert footprint.band == "r"
        assert footprint.physical_filter == "r_03"
        # A 30 s exposure.
        assert (footprint.t_max - footprint.t_min) * 86400 == pytest.approx(30)
        assert len(footprint.vertices) == 4
        # ci detectors are 400 x 392 pixels of 0.2": about 0.03 degrees.
        assert 0.025 < footprint.field_of_view < 0.04


def test_a_shape_finds_what_overlaps_it(butler, everything):
    first = everything[0]
    ra, dec = first.centre
    near = find_footprints(
        butler, shapes=[SkyCircle(ra, dec, 0.001)], recreatable_only=False
    )
    assert (first.visit, first.detector) in {
        (f.visit, f.detector) for f in near
    }
    assert len(near) < len(everything)
    far = find_footprints(butler, shapes=[SkyRange(200, 201, 10, 11)])
    assert far == []
    # Several shapes: either may match.
    both = find_footprints(
        butler,
        shapes=[SkyRange(200, 201, 10, 11), SkyCircle(ra, dec, 0.001)],
        recreatable_only=False,
    )
    assert both == near


def test_covering_holds_the_position(butler, everything):
    first = next(f for f in everything if f.recreatable)
    ra, dec = first.centre
    found = covering(butler, ra, dec)
    assert (first.visit, first.detector) in {
        (f.visit, f.detector) for f in found
    }
    # One detector per visit holds a point (they do not overlap).
    assert len({f.visit for f in found}) == len(found)
    assert all(f.recreatable for f in found)
    assert covering(butler, ra, dec, bands=["g"]) == []


def test_the_busiest_position_is_held_by_the_most_epochs(butler, everything):
    ra, dec, epochs = busiest_position(butler)
    assert epochs == [f for f in covering(butler, ra, dec) if f.recreatable]
    assert (ra, dec) in [f.centre for f in everything]
    # No other detector centre is in more recreatable epochs.
    for footprint in everything[:12]:
        others = covering(butler, *footprint.centre)
        assert len([f for f in others if f.recreatable]) <= len(epochs)
