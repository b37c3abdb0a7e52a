"""DP2's HIGH_VARIANCE template plane and its coverage rule."""

from __future__ import annotations

import numpy as np

from recreate.exposure import MaskPlanes
from recreate.numerics.box import PixelBox
from recreate.pipeline.config import HighVarianceConfig
from recreate.pipeline.template.high_variance import (
    flag_high_variance,
    high_variance_levels,
    high_variance_window,
    mark_high_variance,
)

PLANES = MaskPlanes.afw_default()
CONFIG = HighVarianceConfig()


def _mark(variance, mask):
    """Flag the whole template, as the solve does."""
    _, flagged = high_variance_levels(variance, mask, PLANES, CONFIG)
    return flag_high_variance(mask, PLANES, flagged)


def _variance(shape=(256, 320), seed=4):
    rng = np.random.default_rng(seed)
    return rng.uniform(90.0, 110.0, shape).astype(np.float32)


def test_regions_above_four_times_the_median_are_flagged():
    variance = _variance()
    # A block where few visits went in: 6x the variance, a few bins wide.
    variance[64:192, 200:320] *= 6.0
    mask = np.zeros(variance.shape, dtype=np.int32)
    out, planes = _mark(variance, mask)
    flagged = (out & planes.value("HIGH_VARIANCE")) != 0
    assert flagged[128, 280]
    assert not flagged[128, 60]
    # The smooth (LINEAR, bin 32) background blurs the edge by a bin.
    inside = flagged[80:176, 232:320]
    assert inside.all()
    assert not flagged[:, :150].any()
    # Nothing else changes; the input mask is not modified.
    assert not np.any(out & ~planes.value("HIGH_VARIANCE"))
    assert not mask.any()


def test_masked_pixels_do_not_enter_the_background():
    variance = _variance()
    variance[64:192, 200:320] *= 6.0
    mask = np.zeros(variance.shape, dtype=np.int32)
    # DETECTED over the high block: ignored, the block is not flagged.
    mask[48:208, 184:320] |= PLANES.value("DETECTED")
    out, planes = _mark(variance, mask)
    assert not np.any(out[100:150, 250:300] & planes.value("HIGH_VARIANCE"))


def test_nothing_is_flagged_under_ten_percent_unmasked():
    variance = _variance()
    variance[:, 160:] *= 6.0
    mask = np.full(variance.shape, PLANES.value("NO_DATA"), dtype=np.int32)
    mask[:20, :] = 0  # 7.8% unmasked
    out, planes = _mark(variance, mask)
    assert "HIGH_VARIANCE" in planes
    assert not np.any(out & planes.value("HIGH_VARIANCE"))


def test_v30_coverage_also_counts_science_no_data():
    # v30's checkTemplateIsSufficient: a pixel the science image has no
    # data for is not covered either; v29 looks at the template only.
    from dataclasses import replace

    from recreate.exposure import Exposure
    from recreate.pipeline.config import TemplateConfig
    from recreate.pipeline.template.build import _coverage, _science_no_data

    border, no_data = 20, PLANES.value("NO_DATA")
    template_mask = np.zeros((100 + 2 * border, 80 + 2 * border), np.int32)
    template_mask[border : border + 25, :] |= no_data  # a quarter
    science_mask = np.zeros((100, 80), np.int32)
    science_mask[:, :40] |= no_data  # a half
    science = Exposure(
        np.zeros((100, 80), np.float32),
        np.ones((100, 80), np.float32),
        science_mask,
        PLANES,
    )
    v29 = TemplateConfig()
    v30 = replace(v29, coverage_counts_science_no_data=True)
    assert _science_no_data(science, v29) is None
    assert _coverage(template_mask, border, no_data) == 0.75
    both = _science_no_data(science, v30)
    assert _coverage(template_mask, border, no_data, both) == 0.375


def test_a_window_is_flagged_as_the_whole_template_is():
    rng = np.random.default_rng(7)
    variance = _variance((300, 420))
    variance[64:192, 200:320] *= 6.0
    variance[250:, :90] *= 5.0
    mask = np.zeros(variance.shape, dtype=np.int32)
    mask[100:140, 20:60] |= PLANES.value("NO_DATA")  # empty bins too
    levels, flagged = high_variance_levels(variance, mask, PLANES, CONFIG)
    whole, planes = flag_high_variance(mask, PLANES, flagged)
    assert flagged.any()
    shape = variance.shape
    for _ in range(12):
        w, h = (int(v) for v in rng.integers(1, 90, size=2))
        x0 = int(rng.integers(0, shape[1] - w + 1))
        y0 = int(rng.integers(0, shape[0] - h + 1))
        box = PixelBox(x0, y0, w, h)
        window = high_variance_window(shape, CONFIG, box)
        cut = (
            slice(window.y0, window.y0 + window.height),
            slice(window.x0, window.x0 + window.width),
        )
        out, got = mark_high_variance(
            variance[cut],
            mask[cut],
            PLANES,
            CONFIG,
            levels,
            origin=(window.x0, window.y0),
            shape=shape,
            box=box,
        )
        assert got == planes
        inner = (
            slice(y0 - window.y0, y0 - window.y0 + h),
            slice(x0 - window.x0, x0 - window.x0 + w),
        )
        assert np.array_equal(out[inner], whole[y0 : y0 + h, x0 : x0 + w])
