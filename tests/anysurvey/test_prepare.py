"""Preparing any-survey inputs: DETECTED before ScaleVariance, sky, model."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.anysurvey.options import AnySurveyOptions
from recreate.anysurvey.prepare import looks_noiseless, prepare_input
from recreate.exposure import Exposure, PsfInfo
from recreate.pipeline.config import DEFAULT_CONFIG
from recreate.pipeline.match import scale_variance
from recreate.simulate.pair import simulate_pair


@pytest.fixture(scope="module")
def crowded():
    """A crowded science image with a true variance plane, no DETECTED."""
    pair = simulate_pair(384, seed=3)
    render = pair.science
    return Exposure(
        image=render.image,
        variance=render.variance,
        mask=render.mask,
        mask_planes=render.mask_planes,
        wcs=pair.science_wcs,
        psf=PsfInfo(fwhm=4.6),
    )


def _factor(exposure):
    return scale_variance(
        exposure.image,
        exposure.variance,
        exposure.mask,
        exposure.mask_planes,
        DEFAULT_CONFIG.subtract,
    )[1]


def test_detection_keeps_sources_out_of_the_variance_factor(crowded):
    # The variance plane is true, so the right factor is 1; without
    # DETECTED every source pixel counts as noise.
    assert "DETECTED" not in crowded.mask_planes or not np.any(
        crowded.mask & crowded.mask_planes.value("DETECTED")
    )
    bare, notes = prepare_input(
        crowded, "science", AnySurveyOptions(detect="off")
    )
    assert notes == []
    flagged, notes = prepare_input(crowded, "science", AnySurveyOptions())
    assert any("no DETECTED plane" in note for note in notes)
    detected = flagged.mask & flagged.mask_planes.value("DETECTED")
    assert 0.05 < np.count_nonzero(detected) / detected.size < 0.5
    assert _factor(bare) > 1.15
    assert _factor(flagged) == pytest.approx(1.0, abs=0.06)
    # An input that has DETECTED pixels keeps them (auto).
    again, notes = prepare_input(flagged, "science", AnySurveyOptions())
    assert notes == []
    np.testing.assert_array_equal(again.mask, flagged.mask)


def test_constant_template_variance_and_floor(crowded):
    options = AnySurveyOptions(template_variance=0.0, variance_floor=2.0)
    prepared, notes = prepare_input(
        crowded, "template 0", options, template=True, scale_variance=False
    )
    assert np.all(prepared.variance == 2.0)
    assert notes[:2] == [
        "template 0 variance set to 0 (not rescaled)",
        f"template 0 variance floored at 2 ({crowded.image.size} px)",
    ]
    # Its variance is not rescaled, so no DETECTED plane is made for it.
    assert "DETECTED" not in " ".join(notes)


def test_a_model_looks_noiseless(crowded):
    assert not looks_noiseless(crowded)
    model = np.zeros((50, 50), dtype=np.float32)
    model[20:25, 20:25] = 100.0
    noiseless = Exposure(
        image=model, variance=model.copy(), mask=np.zeros((50, 50), np.int32)
    )
    assert looks_noiseless(noiseless)
