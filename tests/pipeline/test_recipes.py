"""The named recipes: what each sets, their hashes, and golden outputs.

The golden tests recreate one detector of the session's ``ci``
repository with each recipe and compare it with a reference kept under
``tests/data/reference/``: the kernel's basis exactly, the whole mask
exactly, a 96x96 cut-out of the image and variance to a small fraction
of the noise, and whole-image statistics. Run with
``RECREATE_UPDATE_GOLDEN=1`` to rewrite the references after a deliberate
change (and say why in the commit).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from recreate.butler import open_butler
from recreate.errors import InvalidRequestError
from recreate.pipeline.config import (
    GET_PSF_FWHM_PER_SIGMA,
    PipelineConfig,
)
from recreate.pipeline.provenance import canonical_hash
from recreate.pipeline.recipes import (
    DP1,
    DP2,
    RECIPES,
    get_recipe,
    release_recipe,
)
from recreate.recreation import recreate_from_butler
from tests.support.service import key_with_coverage

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"
UPDATE = os.environ.get("RECREATE_UPDATE_GOLDEN") == "1"
#: The cut-out compared pixel by pixel: the detector's middle.
CUTOUT = (slice(148, 244), slice(152, 248))


def test_recipes_are_named_frozen_and_differently_hashed():
    assert tuple(RECIPES) == ("dp1", "dp2")
    assert RECIPES["dp1"] is DP1
    assert DP1.recipe == "dp1"
    assert DP1.pipelines_version == "v29.0.0"
    assert DP2.recipe == "dp2"
    assert DP2.pipelines_version == "v30.0.6"
    assert DP1.config_hash() != DP2.config_hash()
    # Today's dp1 is the v29 default configuration.
    assert PipelineConfig().config_hash() == DP1.config_hash()
    with pytest.raises(dataclasses.FrozenInstanceError):
        DP2.recipe = "dp3"  # type: ignore[misc]
    # The hash is of the plain JSON values: a copy hashes the same.
    again = json.loads(json.dumps(DP2.to_dict()))
    assert canonical_hash(again) == DP2.config_hash()


def test_unknown_recipe_is_named_in_the_error():
    assert get_recipe("dp2") is DP2
    with pytest.raises(InvalidRequestError, match=r"'dp9'.*dp1, dp2"):
        get_recipe("dp9")


def test_release_of_a_repository_follows_its_visit_images():
    assert release_recipe("VisitImage") == "dp2"
    assert release_recipe("ExposureF") == "dp1"
    assert release_recipe(None) == "dp1"
    assert release_recipe("") == "dp1"


def test_both_recipes_keep_v29s_getpsffwhm_factor():
    # The upstream fix (w.2026.17) came after DP2: both keep 2 ln(2 sqrt 2).
    for config in (DP1, DP2):
        assert config.kernel.psf_fwhm_per_sigma == GET_PSF_FWHM_PER_SIGMA
        assert config.kernel.psf_fwhm_per_sigma == pytest.approx(2.0794415)
        assert config.sources.unresolved_max_extendedness == 0.1


def test_dp2_sets_what_v30_changed_and_nothing_else():
    # rubin-recipe-dp2.md sections 2-4, field by field.
    changed = {
        ("template", "high_variance"),
        ("template", "coverage_counts_science_no_data"),
        ("sources", "exclude_mask_planes"),
        ("sources", "mask_check"),
        ("sources", "restrict_edge_sources"),
        ("sources", "fallback_selector"),
        ("subtract", "do_subtract_background"),
        ("subtract", "preserve_template_mask"),
        ("subtract", "scale_variance_bin_count"),
        ("subtract", "detection_exclude_planes"),
        ("subtract", "difference_background"),
        ("subtract", "no_data_image_value"),
    }
    v29, v30 = DP1.to_dict(), DP2.to_dict()
    differing = {
        (stage, name)
        for stage in ("template", "sources", "kernel", "subtract")
        for name in v29[stage]
        if v29[stage][name] != v30[stage][name]
    }
    assert differing == changed
    assert DP2.subtract.do_subtract_background is False
    assert DP2.kernel.fit_for_background is True
    assert "HIGH_VARIANCE" in DP2.sources.exclude_mask_planes
    assert DP2.subtract.preserve_template_mask == (
        "NO_DATA",
        "BAD",
        "HIGH_VARIANCE",
    )
    backgrounds = DP2.subtract.difference_background
    assert backgrounds is not None
    assert (backgrounds.initial.bin_size, backgrounds.final.bin_size) == (
        8,
        40,
    )
    for bg in (backgrounds.initial, backgrounds.final):
        assert bg.statistic == "MEDIAN"
        assert bg.interpolation == "AKIMA_SPLINE"
        assert bg.filter_super_pixels
        assert bg.bin_count == "ceil"
    high = DP2.template.high_variance
    assert high is not None
    assert (high.threshold, high.min_unmasked_fraction) == (4.0, 0.1)
    assert high.background.interpolation == "LINEAR"
    assert DP2.subtract.no_data_image_value == 0.0


@pytest.fixture(scope="module")
def golden_key(ci_repo):
    return key_with_coverage(ci_repo, 1.0, 2.0, detector=4)


@pytest.mark.parametrize("name", ["dp1", "dp2"])
def test_golden_output_of_each_recipe(ci_repo, golden_key, name):
    result = recreate_from_butler(
        open_butler(str(ci_repo.root)), *golden_key, recipe=name
    )
    diff = result.exposure
    assert diff.metadata["RECREATE RECIPE"] == name
    got = {
        "image": diff.image[CUTOUT],
        "variance": diff.variance[CUTOUT],
        "mask": diff.mask,
        "planes": np.array(diff.mask_planes.names),
        "sigmas": np.array(result.kernel.basis.sigmas),
        "size": np.array(result.kernel.basis.size),
        "stats": _statistics(diff.image, diff.variance),
    }
    path = REFERENCE / f"golden_{name}.npz"
    if UPDATE:
        np.savez_compressed(path, **got)
    want = np.load(path)
    np.testing.assert_array_equal(got["planes"], want["planes"])
    np.testing.assert_array_equal(got["mask"], want["mask"])
    np.testing.assert_allclose(got["sigmas"], want["sigmas"], rtol=1e-12)
    assert int(got["size"]) == int(want["size"])
    noise = np.sqrt(want["variance"])
    finite = np.isfinite(want["image"])
    np.testing.assert_array_equal(np.isfinite(got["image"]), finite)
    assert np.all(
        np.abs(got["image"] - want["image"])[finite] < 1e-4 * noise[finite]
    )
    np.testing.assert_allclose(got["variance"], want["variance"], rtol=1e-5)
    np.testing.assert_allclose(got["stats"], want["stats"], rtol=1e-4)


def test_golden_outputs_differ_where_the_recipes_do():
    dp1 = np.load(REFERENCE / "golden_dp1.npz")
    dp2 = np.load(REFERENCE / "golden_dp2.npz")
    assert "HIGH_VARIANCE" in dp2["planes"]
    assert "HIGH_VARIANCE" not in dp1["planes"]
    # DP2 subtracts a bin-40 background after the fact: the sky's median
    # moves towards 0; the noise level does not change.
    assert abs(dp2["stats"][0]) < abs(dp1["stats"][0])
    assert dp2["stats"][1] == pytest.approx(dp1["stats"][1], rel=0.02)


def _statistics(image, variance):
    """Median, robust sigma and mean variance of the finite pixels."""
    finite = np.isfinite(image)
    q1, q3 = np.percentile(image[finite], (25, 75))
    return np.array(
        [
            np.median(image[finite]),
            0.741 * (q3 - q1),
            float(np.mean(variance[finite], dtype=np.float64)),
        ]
    )
