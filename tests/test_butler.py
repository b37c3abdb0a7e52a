"""Input lookup against a real simulated Butler repository."""

import shutil

import numpy as np
import pytest

from recreate.butler import find_inputs, open_butler
from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    NoOverlapError,
)
from recreate.io import read_dp1
from recreate.skymap import SkyMap
from recreate.summary import summarize_repository
from tests.conftest import CI_SEED


@pytest.fixture(scope="module")
def butler(ci_repo):
    return open_butler(str(ci_repo.root))


def _first_full_key(ci_repo):
    for key, fraction in sorted(ci_repo.coverage.items()):
        visit, detector = map(int, key.split("/"))
        if fraction == 1.0 and detector == 4:
            return visit, detector
    pytest.fail("the ci repository has no fully covered central detector")


def _patches_by_geometry(butler, exposure):
    """Patches whose outer boxes the detector (+20 px) touches."""
    skymap = SkyMap.from_dict(_only_skymap(butler))
    height, width = exposure.shape
    # Points along the grown edge and across the inside.
    xs, ys = np.meshgrid(
        np.linspace(-20.5, width + 19.5, 41),
        np.linspace(-20.5, height + 19.5, 41),
    )
    ra, dec = exposure.wcs.pixel_to_world_values(xs.ravel(), ys.ravel())
    found = set()
    for tract in skymap:
        for patch in tract.patches_overlapping(ra, dec):
            found.add((tract.tract_id, patch))
    return found


def _only_skymap(butler):
    (record,) = list(butler.registry.queryDimensionRecords("skymap"))
    return butler.get("skyMap", skymap=record.name)


def test_finds_the_visit_image_and_its_patches(butler, ci_repo):
    visit, detector = _first_full_key(ci_repo)
    found = find_inputs(butler, visit, detector)
    assert (found.visit, found.detector, found.band) == (visit, detector, "r")
    assert found.instrument == "LSSTComCam"
    assert found.physical_filter == "r_03"
    assert found.day_obs == visit // 100000
    assert found.visit_image.data_id["visit"] == visit
    exposure = read_dp1(found.visit_image.uri.removeprefix("file://"))
    assert exposure.observation.visit == visit
    expected = _patches_by_geometry(butler, exposure)
    stored = {
        (int(r.dataId["tract"]), int(r.dataId["patch"]))
        for r in butler.query_datasets("template_coadd", band="r")
    }
    got = [(t.data_id["tract"], t.data_id["patch"]) for t in found.templates]
    # A ci detector (400 px) straddles 2-3 patches (300 px) per axis.
    assert len(got) >= 4
    assert set(got) == expected & stored
    assert got == sorted(got)
    assert len(set(found.dataset_ids)) == 1 + len(got)


def test_some_detectors_straddle_two_tracts(butler, ci_repo):
    tracts_per_key = set()
    for key in list(ci_repo.coverage)[:9]:
        visit, detector = map(int, key.split("/"))
        found = find_inputs(butler, visit, detector)
        tracts_per_key.add(len({t.data_id["tract"] for t in found.templates}))
    assert tracts_per_key == {1, 2}


@pytest.mark.parametrize(
    ("visit", "detector", "error", "message"),
    [
        (2024110900999, 4, DataNotFoundError, "visit 2024110900999"),
        (
            None,
            9,
            DataNotFoundError,
            "detector 9 of LSSTComCam does not exist",
        ),
        (None, -1, InvalidRequestError, "detector -1 is out of range"),
        (-5, 4, InvalidRequestError, "visit -5 is out of range"),
        (10**20, 4, InvalidRequestError, "out of range"),
        ("12", 4, InvalidRequestError, "visit must be an integer, got '12'"),
        (None, 4.5, InvalidRequestError, "detector must be an integer"),
    ],
)
def test_bad_keys_are_named(butler, ci_repo, visit, detector, error, message):
    if visit is None:
        visit = _first_full_key(ci_repo)[0]
    with pytest.raises(error, match=message):
        find_inputs(butler, visit, detector)


def test_names_read_before_still_refuse_unknown_ones(butler, ci_repo):
    # Instruments and detectors are kept per Butler after a lookup; an
    # unknown one is still looked up, and refused by name.
    visit, detector = _first_full_key(ci_repo)
    found = find_inputs(butler, visit, detector)
    assert find_inputs(butler, visit, detector) == found
    assert find_inputs(butler, visit, detector, instrument=found.instrument)
    with pytest.raises(DataNotFoundError, match="detector 9 of"):
        find_inputs(butler, visit, 9)
    with pytest.raises(DataNotFoundError, match="instrument 'HSC'"):
        find_inputs(butler, visit, detector, instrument="HSC")


def test_unknown_instrument_is_named(butler, ci_repo):
    visit, detector = _first_full_key(ci_repo)
    with pytest.raises(DataNotFoundError, match="instrument 'HSC'"):
        find_inputs(butler, visit, detector, instrument="HSC")


def test_missing_repository_is_named(tmp_path):
    with pytest.raises(DataNotFoundError, match="no Butler repository"):
        open_butler(str(tmp_path / "nowhere"))


def test_no_template_is_a_clear_error(tmp_path, ci_repo):
    # A repository with the same visits but no templates at all.
    from recreate.simulate import registry
    from recreate.simulate.presets import get_preset
    from recreate.simulate.survey import plan_survey

    plan = plan_survey(get_preset("ci"), CI_SEED)
    writer = registry.create_butler(tmp_path / "repo")
    registry.register_dimensions(writer, plan)
    registry.register_dataset_types(writer)
    visit = plan.visits[0].visit
    source = open_butler(str(ci_repo.root))
    (ref,) = source.query_datasets(
        "visit_image", visit=visit, detector=4, explain=False
    )
    copy = tmp_path / "visit.fits"
    shutil.copy(source.getURI(ref).ospath, copy)
    data_id = {"instrument": "LSSTComCam", "visit": visit, "detector": 4}
    assert registry.ingest_files(writer, "visit_image", [(copy, data_id)]) == 1
    with pytest.raises(NoOverlapError, match=f"overlaps visit {visit}"):
        find_inputs(open_butler(str(tmp_path / "repo")), visit, 4)
    # A detector of that visit with no visit_image is named as such.
    with pytest.raises(DataNotFoundError, match="no visit_image"):
        find_inputs(open_butler(str(tmp_path / "repo")), visit, 5)


def test_summary_counts(butler, ci_repo):
    summary = summarize_repository(butler)
    assert summary.instruments == ["LSSTComCam"]
    assert summary.bands == ["r"]
    assert summary.visits == 8
    assert summary.detectors == 9
    assert summary.visit_images == 72 == ci_repo.visit_images
    assert summary.template_patches == ci_repo.template_patches
    assert summary.tracts == [0, 1]
    assert summary.datasets["injection_truth"] == 8
    text = "\n".join(summary.lines())
    assert "visit_images:     72" in text
    assert "template coverage:" in text


def test_one_query_finds_what_the_lookup_step_by_step_finds(
    butler, ci_repo, monkeypatch
):
    # The visit image comes with its visit's and region's records in one
    # query; the step-by-step lookup (which names what is missing when
    # that finds nothing) must give the same inputs.
    import recreate.butler as module

    keys = [k for k, f in sorted(ci_repo.coverage.items()) if f > 0.5][:6]
    fast = [find_inputs(butler, *map(int, k.split("/"))) for k in keys]
    monkeypatch.setattr(module, "_visit_image_with_records", lambda *_: None)
    slow = [find_inputs(butler, *map(int, k.split("/"))) for k in keys]
    assert fast == slow
