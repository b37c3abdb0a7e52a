"""Pixel-aligned templates, and inputs with no pixel to detect on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from recreate.anysurvey.aligned import aligned_template
from recreate.anysurvey.options import AnySurveyOptions
from recreate.anysurvey.prepare import prepare_input
from recreate.pipeline.recipes import DP1, DP2
from tests.support.exposures import make_exposure


def _pair():
    science = make_exposure((120, 140), seed=1)
    template = make_exposure((120, 140), seed=2)
    variance = np.full(template.shape, 100.0, dtype=np.float32)
    # A corner of the template with 30x the variance of the rest.
    variance[:40, :40] = 3000.0
    template = replace(
        template, mask=np.zeros(template.shape, np.int32), variance=variance
    )
    return science, template


def _high_variance(warped):
    planes = warped.exposure.mask_planes
    bit = planes.value("HIGH_VARIANCE") if "HIGH_VARIANCE" in planes else 0
    return (warped.exposure.mask & bit) != 0


def test_the_dp2_recipe_flags_high_variance_on_an_aligned_template():
    science, template = _pair()
    plain = aligned_template(science, [template], DP1.template)
    assert not _high_variance(plain).any()
    flagged = aligned_template(science, [template], DP2.template)
    planes = flagged.exposure.mask_planes
    high = _high_variance(flagged)
    border = DP2.template.border
    inner = high[border:-border, border:-border]
    assert inner[:16, :16].all()
    assert not inner[64:, 64:].any()
    # Nothing else changed: the other planes are DP1's.
    other = ~np.int32(planes.value("HIGH_VARIANCE"))
    np.testing.assert_array_equal(
        flagged.exposure.mask & other, plain.exposure.mask
    )


def test_an_input_without_pixels_gets_no_detection_pass():
    # As `recreate.inputs` reads a patch the science image cannot reach.
    whole = make_exposure(seed=3)
    empty = replace(
        whole,
        image=whole.image[:0, :0],
        variance=whole.variance[:0, :0],
        mask=whole.mask[:0, :0],
    )
    prepared, notes = prepare_input(
        empty, "template 0", AnySurveyOptions(background="off"), template=True
    )
    assert not any("DETECTED" in note for note in notes)
    assert prepared.mask.size == 0
