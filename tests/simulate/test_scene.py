"""Tests of one rendered visit-detector's cosmic-ray truth."""

import numpy as np
import pytest

from recreate.simulate.catalog import draw_static_sky, draw_transients
from recreate.simulate.presets import get_preset
from recreate.simulate.scene import render_visit_detector
from recreate.simulate.survey import plan_survey
from tests.conftest import CI_SEED


@pytest.fixture(scope="module")
def rendered():
    # A demo detector of the test seed whose faint rays the repair
    # missed, in part: some of their charge stays in the image.
    plan = plan_survey(get_preset("demo"), CI_SEED)
    visit = plan.visits[0]
    return render_visit_detector(
        plan, draw_static_sky(plan), draw_transients(plan), visit, 2
    )


def test_the_cosmic_ray_truth_is_the_one_applied_to_the_image(rendered):
    truth = rendered.cosmic_rays
    exposure = rendered.exposure
    cr = (exposure.mask & exposure.mask_planes.value("CR")) != 0
    repaired = np.zeros(exposure.shape, dtype=bool)
    repaired[truth.repaired_y, truth.repaired_x] = True
    np.testing.assert_array_equal(cr, repaired)


def test_charge_the_repair_missed_is_in_the_image_not_in_the_model(
    rendered,
):
    truth = rendered.cosmic_rays
    left = truth.left_in_image
    assert 0 < left.sum() < len(left)
    ys, xs = truth.hit_y[left], truth.hit_x[left]
    exposure = rendered.exposure
    noise = np.sqrt(exposure.variance[ys, xs].astype(np.float64).sum())
    excess = (exposure.image[ys, xs] - rendered.model[ys, xs]).sum()
    # The model alone leaves a significant excess; the ray's charge
    # explains it to within the noise.
    assert excess / noise > 8
    assert abs(excess - truth.deposit[left].sum()) / noise < 3
