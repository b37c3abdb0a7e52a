"""The any-survey mode end to end on small synthetic pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recreate.anysurvey.options import AnySurveyOptions
from recreate.anysurvey.subtract import subtract_files
from recreate.errors import ProcessingError, UnreliableKernelError
from tests.support.pairs import PairSpec, robust_z, write_star_pair

CARD = "RECREATE "


def _cards(result):
    return {
        k.removeprefix(CARD): v
        for k, v in result.exposure.metadata.items()
        if k.startswith(CARD)
    }


def test_clean_pair_records_detection_and_needs_no_fallback(tmp_path):
    # A whole-pixel-offset card that is not a whole pixel: legal FITS.
    science, template = write_star_pair(tmp_path, LTV1=-17.7, LTV2=-3.0)
    result = subtract_files(science, [template])
    cards = _cards(result)
    assert cards["ANYSURVEY"] is True
    assert cards["FALLBACKS"] == "none"
    assert cards["DETECTED BEFORE SCALEVAR"] == "template 0, science"
    assert cards["SKY SUBTRACTED"] == "none"
    assert cards["TEMPLATE VARIANCE"] == "scale"
    assert math.isfinite(float(cards["KERNEL CONDITION"]))
    notes = " ".join(result.provenance.notes)
    assert "LTV1=-17.7" in notes
    assert "xy0 rounded to (18, 3)" in notes
    z, pixels = robust_z(result.exposure)
    assert pixels > 30_000
    assert z == pytest.approx(1.0, abs=0.05)
    # Deterministic: the same files give the same planes and cards.
    again = subtract_files(science, [template])
    assert again.exposure.plane_hash() == result.exposure.plane_hash()
    assert again.exposure.metadata == result.exposure.metadata


def test_unsubtracted_inputs_get_their_sky_fitted(tmp_path):
    science, template = write_star_pair(tmp_path, PairSpec(sky=3000.0))
    with pytest.raises(ProcessingError, match="PSF"):
        # Without the sky fit the stars cannot even be found.
        subtract_files(
            science, [template], options=AnySurveyOptions(background="off")
        )
    result = subtract_files(science, [template])
    cards = _cards(result)
    assert cards["SKY SUBTRACTED"] == "template 0, science"
    z, _ = robust_z(result.exposure)
    assert z == pytest.approx(1.0, abs=0.05)
    assert abs(float(np.nanmedian(result.exposure.image))) < 1.0


def test_stars_above_the_snr_cap_fall_back_recorded(tmp_path):
    # S/N about 1400: every star is above v29's cap of 500.
    science, template = write_star_pair(tmp_path, PairSpec(flux=1.0e5))
    strict = AnySurveyOptions(candidate_fallback=False)
    with pytest.raises(ProcessingError, match="kernel candidates"):
        subtract_files(science, [template], options=strict)
    result = subtract_files(science, [template])
    assert _cards(result)["FALLBACKS"] == "no S/N cap"
    assert any("S/N 500 cap" in n for n in result.provenance.notes)
    assert result.provenance.n_kernel_used >= 15


def test_thin_solution_steps_orders_down_or_is_an_error(tmp_path):
    # Four stars cannot constrain v29's background order 2 (six terms).
    # Their PSF images give the widths (four stars could not).
    science, template = write_star_pair(
        tmp_path, PairSpec(stars_per_side=2), psf=True
    )
    strict = AnySurveyOptions(spatial_fallback=False)
    with pytest.raises(UnreliableKernelError, match="too thin: 4 stars"):
        subtract_files(science, [template], options=strict)
    allowed = AnySurveyOptions(
        spatial_fallback=False, allow_ill_conditioned=True
    )
    written = subtract_files(science, [template], options=allowed)
    assert "written on request" in written.provenance.notes[-1]
    assert any(
        "written on request" in str(v) for v in _cards(written).values()
    )
    result = subtract_files(science, [template])
    assert not any("measured" in note for note in result.provenance.notes)
    assert result.provenance.science_fwhm == pytest.approx(
        2.0 * 2.3548, rel=0.02
    )
    cards = _cards(result)
    assert cards["FALLBACKS"] == "spatial orders 1/1"
    assert result.kernel.spatial_bg_order == 1
    assert result.kernel.condition_number <= 1e10
