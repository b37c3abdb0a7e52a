import numpy as np
import pytest

from recreate.errors import InvalidRequestError
from recreate.simulate.catalog import draw_static_sky, draw_transients
from recreate.simulate.presets import PRESETS, get_preset
from recreate.simulate.survey import derive_seed, plan_survey


def test_same_seed_same_plan_and_sky():
    a = plan_survey(get_preset("ci"), 3)
    b = plan_survey(get_preset("ci"), 3)
    assert a.visits == b.visits
    sky_a, sky_b = draw_static_sky(a), draw_static_sky(b)
    np.testing.assert_array_equal(sky_a.ra, sky_b.ra)
    np.testing.assert_array_equal(sky_a.mag_r, sky_b.mag_r)


def test_different_seeds_differ():
    a = plan_survey(get_preset("ci"), 3)
    b = plan_survey(get_preset("ci"), 4)
    assert [v.psf.fwhm for v in a.visits] != [v.psf.fwhm for v in b.visits]


def test_derived_seeds_depend_on_every_part():
    assert derive_seed(1, "visit", 5, 0) != derive_seed(1, "visit", 5, 1)
    assert derive_seed(1, "visit", 5, 0) == derive_seed(1, "visit", 5, 0)
    assert 0 <= derive_seed(9, "x") < 2**63


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_seeing_follows_dp1(name):
    # DP1 r band: median 1.11", range about 0.6-1.7"; the template is
    # sharper than the median visit (best-third selection).
    fwhms = []
    for seed in range(20):
        plan = plan_survey(get_preset(name), seed)
        fwhms += [v.psf.fwhm for v in plan.visits_in("r")]
        core = [v.psf.fwhm for v in plan.template_visits("r")]
        assert plan.template_fwhm["r"] < np.median(core)
    assert min(fwhms) >= 0.6 and max(fwhms) <= 1.7
    assert np.median(fwhms) == pytest.approx(1.11, abs=0.08)


def test_visit_ids_follow_dp1_convention():
    plan = plan_survey(get_preset("demo"), 1)
    ids = [v.visit for v in plan.visits]
    assert len(set(ids)) == len(ids)
    for visit in plan.visits:
        assert visit.visit // 100000 == visit.day_obs
        assert str(visit.day_obs).startswith("2024")
    assert {v.physical_filter for v in plan.visits} == {"g_01", "r_03"}


def test_transients_peak_during_the_survey():
    plan = plan_survey(get_preset("ci"), 2)
    transients = draw_transients(plan)
    mjds = [v.mjd for v in plan.visits]
    assert np.all(transients.peak_mjd >= min(mjds))
    # At peak a transient has its peak flux.
    flux = transients.flux_at(float(transients.peak_mjd[0]))[0]
    assert flux == pytest.approx(10 ** ((31.4 - transients.peak_mag[0]) / 2.5))


def test_star_counts_rise_towards_faint_magnitudes():
    plan = plan_survey(get_preset("demo"), 1)
    sky = draw_static_sky(plan)
    stars = sky.mag_r[~sky.is_galaxy]
    bright = np.sum((stars > 16) & (stars < 17))
    faint = np.sum((stars > 24) & (stars < 25))
    # dN/dm ~ 10^(0.12 m): about 9x more stars 8 mag fainter.
    assert 4 < faint / max(bright, 1) < 20


def test_unknown_preset_is_named():
    with pytest.raises(InvalidRequestError, match="unknown preset 'huge'"):
        get_preset("huge")
