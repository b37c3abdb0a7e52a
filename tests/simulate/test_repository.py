"""The simulated repository: determinism, truth, templates, metadata."""

import subprocess
import sys

import numpy as np
import pytest

from recreate.butler import open_butler
from recreate.errors import InvalidRequestError
from recreate.io import read_dp1
from recreate.simulate.repository import simulate_repository
from tests.conftest import CI_SEED

RENDER_ONE = """
import sys
from recreate.simulate.catalog import draw_static_sky, draw_transients
from recreate.simulate.presets import get_preset
from recreate.simulate.scene import render_visit_detector
from recreate.simulate.survey import plan_survey
plan = plan_survey(get_preset("ci"), int(sys.argv[1]))
visit = plan.visits[int(sys.argv[2])]
out = render_visit_detector(
    plan, draw_static_sky(plan), draw_transients(plan), visit, int(sys.argv[3])
)
print(out.exposure.plane_hash())
"""


def _render_hash(seed, visit_index, detector):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            RENDER_ONE,
            str(seed),
            str(visit_index),
            str(detector),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def butler(ci_repo):
    return open_butler(str(ci_repo.root))


def _read(butler, ref):
    return read_dp1(butler.getURI(ref).ospath)


def test_same_seed_same_pixels_in_separate_processes(butler):
    first = _render_hash(CI_SEED, 1, 5)
    second = _render_hash(CI_SEED, 1, 5)
    assert first == second
    # ... and the repository holds exactly those pixels.
    plan_visit = sorted(
        r.dataId["visit"] for r in butler.query_datasets("visit_image")
    )[9]
    (ref,) = butler.query_datasets(
        "visit_image", visit=plan_visit, detector=5, explain=False
    )
    assert _read(butler, ref).plane_hash() == first
    assert _render_hash(CI_SEED + 1, 1, 5) != first


def test_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "junk").write_text("x")
    with pytest.raises(InvalidRequestError, match="is not empty"):
        simulate_repository(tmp_path, "ci", 1)


def test_visit_images_carry_their_metadata(butler):
    ref = butler.query_datasets("visit_image", limit=1)[0]
    exposure = _read(butler, ref)
    obs = exposure.observation
    assert obs.visit == ref.dataId["visit"]
    assert obs.detector == ref.dataId["detector"]
    assert obs.band == ref.dataId["band"] == "r"
    assert obs.physical_filter == ref.dataId["physical_filter"]
    assert obs.day_obs == ref.dataId["day_obs"]
    assert obs.instrument == "LSSTComCam"
    assert obs.exposure_time == 30.0
    assert exposure.wcs.wcs.ctype[0] == "RA---TAN-SIP"
    assert exposure.pixel_scale() == pytest.approx(0.2, rel=1e-3)
    assert exposure.psf is not None and exposure.psf.grid is not None
    # DP1 seeing (0.6-1.7") at 0.2"/px.
    assert 3.0 <= exposure.psf.fwhm <= 8.5
    assert exposure.photo_calib.njy_per_electron == pytest.approx(
        0.548, rel=0.01
    )


def test_visit_noise_matches_smtn002(butler):
    ref = butler.query_datasets("visit_image", limit=1)[0]
    exposure = _read(butler, ref)
    # r band, 30 s: sky 877 e-/px at 0.548 nJy/e- gives 16.2 nJy rms.
    # With 6.2 e- read noise: sqrt(877 + 6.2**2) * 0.548 = 16.3 nJy.
    sky_sigma = float(np.percentile(np.sqrt(exposure.variance), 5))
    assert sky_sigma == pytest.approx(16.3, rel=0.02)
    bad = exposure.mask_planes.value("BAD", "CR", "SAT", "INTRP")
    clean = (exposure.mask & bad) == 0
    pixels = exposure.image[clean]
    # Sources only add positive flux: the lower half is pure noise.
    # DP1 images are background-subtracted: the sky level is ~0.
    low_sigma = np.median(pixels) - np.percentile(pixels, 15.87)
    # (faint sources still lift the median a little in a dense field)
    assert low_sigma == pytest.approx(sky_sigma, rel=0.1)
    assert abs(np.median(pixels)) < 0.3 * sky_sigma


def test_visits_carry_defects(butler):
    planes = None
    counts = {"BAD": 0, "CR": 0, "SAT": 0}
    for ref in butler.query_datasets("visit_image", limit=18):
        exposure = _read(butler, ref)
        planes = exposure.mask_planes
        for name in counts:
            counts[name] += int(
                np.count_nonzero(exposure.mask & planes.value(name))
            )
    assert all(n > 0 for n in counts.values()), counts


def test_inputs_carry_dp1s_detection_planes(butler):
    # calibrateImage's DETECTED (positive only) on visit images; the OR
    # of the inputs' DETECTED on template coadds.
    for dataset_type in ("visit_image", "template_coadd"):
        ref = butler.query_datasets(dataset_type, limit=1)[0]
        exposure = _read(butler, ref)
        planes = exposure.mask_planes
        detected = (exposure.mask & planes.value("DETECTED")) != 0
        assert 0.01 < detected.mean() < 0.6, dataset_type
        assert not np.any(exposure.mask & planes.value("DETECTED_NEGATIVE"))
        # Detected pixels are where the sources are; the rest is sky.
        finite = np.isfinite(exposure.image)
        sigma = np.median(np.sqrt(exposure.variance[finite]))
        assert np.median(exposure.image[detected & finite]) > 0.5 * sigma
        # (A template keeps faint sources no single visit detected.)
        assert abs(np.median(exposure.image[~detected & finite])) < 0.2 * sigma


def test_templates_are_deeper_sharper_and_no_data_outside(butler):
    visit_ref = butler.query_datasets("visit_image", limit=1)[0]
    visit = _read(butler, visit_ref)
    templates = [
        _read(butler, r) for r in butler.query_datasets("template_coadd")
    ]
    nodata = [
        t for t in templates if (t.mask & t.mask_planes.value("NO_DATA")).any()
    ]
    assert nodata, "some patches must end where their inputs end"
    for template in nodata:
        flagged = (template.mask & template.mask_planes.value("NO_DATA")) != 0
        assert np.isnan(template.image[flagged]).all()
        assert np.isfinite(template.image[~flagged]).all()
    full = [t for t in templates if t not in nodata]
    assert full, "most patches are fully covered"
    template = full[0]
    assert np.median(template.variance) < np.median(visit.variance) / 5
    assert template.psf.fwhm < np.median(
        [
            _read(butler, r).psf.fwhm
            for r in butler.query_datasets("visit_image", detector=4)
        ]
    )
    obs = template.observation
    assert obs.is_coadd and obs.tract in (0, 1) and obs.band == "r"
    # Outer corners sit a 20-px border before a 300-px inner grid.
    assert all(v % 300 == 280 for v in template.xy0)


def test_coverage_spans_dp1s_cases(ci_repo):
    fractions = np.array(list(ci_repo.coverage.values()))
    full = np.mean(fractions >= 0.999)
    assert 0.7 <= full <= 0.95
    assert np.any((fractions > 0.3) & (fractions < 0.9))
    assert np.any((fractions >= 0.1) & (fractions < 0.2))
    assert np.any(fractions < 0.1)


def _aperture_flux(image, x, y, radius):
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    r = np.hypot(xs - x, ys - y)
    annulus = (r > radius + 6) & (r < radius + 14)
    background = np.median(image[annulus])
    inside = r <= radius
    return float(np.sum(image[inside] - background)), inside


def test_truth_matches_the_pixels(butler):
    """Aperture fluxes of bright injected sources match the truth table."""
    checked = 0
    ratios = []
    for ref in butler.query_datasets("visit_image"):
        visit, detector = ref.dataId["visit"], ref.dataId["detector"]
        truth = butler.get("injection_truth", visit=visit)
        exposure = None
        for row in truth[truth["detector"] == detector]:
            if row["kind"] == "variable" or row["flux"] < 1e4:
                continue  # faint, or sitting on its template-level twin
            x, y = row["x"], row["y"]
            if not (20 < x < 380 and 20 < y < 372):
                continue
            exposure = exposure or _read(butler, ref)
            radius = 2.5 * exposure.psf.fwhm
            bad = exposure.mask_planes.value("BAD", "SAT", "CR", "INTRP")
            flux, inside = _aperture_flux(exposure.image, x, y, radius)
            if (exposure.mask[inside] & bad).any():
                continue
            psf = exposure.psf.grid.image_at(x, y)
            c = psf.shape[0] // 2
            py, px = np.mgrid[: psf.shape[0], : psf.shape[1]]
            ap_frac = psf[np.hypot(px - c, py - c) <= radius].sum()
            ratios.append(flux / (row["flux"] * ap_frac))
            checked += 1
    assert checked >= 8, "too few bright isolated injections to check"
    # Neighbours can add flux; the PSF grid's 41-px stamps, normalised to
    # unit sum, miss a few percent of a Kolmogorov profile's wings, which
    # makes ap_frac a little high: the median must be within 5 percent.
    assert np.median(ratios) == pytest.approx(1.0, abs=0.05)
