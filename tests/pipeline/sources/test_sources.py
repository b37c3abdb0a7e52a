"""Tests of kernel-candidate selection and the sources stage API."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from recreate.errors import ProcessingError
from recreate.exposure import Exposure, MaskPlanes, PsfInfo
from recreate.pipeline import match, sources
from recreate.pipeline.config import SourceConfig
from recreate.pipeline.sources import unresolved
from recreate.pipeline.sources.candidates import (
    KernelCandidates,
    detect_candidate_sources,
    select_kernel_candidates,
)
from recreate.simulate.render import NoiseModel, SourceTable
from tests.pipeline.scenes import SCALE, galaxies, render, stars, tan_wcs

PLANES = MaskPlanes.afw_default()
SHAPE = (320, 320)
FWHM = 0.9  # arcsec
FWHM_PX = FWHM / SCALE
BORDER = 20
KERNEL = 21
CONFIG = SourceConfig()
GRID = np.array([70.0, 160.0, 250.0])
#: Nine isolated stars of S/N about 200-450, brightest at the top right.
GOOD_X, GOOD_Y = (a.ravel() + 0.3 for a in np.meshgrid(GRID, GRID))
GOOD_FLUX = np.linspace(6e4, 2e5, 9)


def scene(extra=None, *, noise=None, seed=3):
    """Render the nine good stars plus ``extra`` sources."""
    wcs = tan_wcs(SHAPE)
    table = stars(wcs, GOOD_X, GOOD_Y, GOOD_FLUX)
    if extra is not None:
        table = SourceTable.concatenate(table, extra)
    kwargs = {} if noise is None else {"noise": noise}
    return render(SHAPE, table, fwhm=FWHM, seed=seed, **kwargs)


def exposure_of(result, *, grid=True):
    psf = PsfInfo(fwhm=FWHM_PX, grid=result.psf_grid if grid else None)
    return Exposure(
        result.image,
        result.variance,
        result.mask,
        result.mask_planes,
        psf=psf,
    )


def template_for(result):
    """Return a template on the science grid grown by BORDER."""
    image = np.pad(result.image, BORDER)
    mask = np.pad(result.mask, BORDER)
    return image, mask


def select(science, template=None, config=CONFIG):
    image, mask = template if template is not None else template_for(science)
    return select_kernel_candidates(
        exposure_of(science) if not isinstance(science, Exposure) else science,
        image,
        mask,
        PLANES,
        border=BORDER,
        kernel_size=KERNEL,
        science_fwhm=FWHM_PX,
        config=config,
    )


def has_source_near(candidates, x, y, tolerance=1.0):
    return bool(
        np.any(np.hypot(candidates.x - x, candidates.y - y) < tolerance)
    )


def assert_good_stars_kept(candidates):
    for x, y in zip(GOOD_X, GOOD_Y, strict=True):
        assert has_source_near(candidates, x, y, 0.1), (x, y)


def test_isolated_stars_are_candidates_brightest_first():
    result = scene()
    candidates = select(result)
    assert isinstance(candidates, KernelCandidates)
    assert len(candidates) == 9
    assert_good_stars_kept(candidates)
    assert np.all(np.diff(candidates.snr) <= 0)
    assert np.all((candidates.snr > 10) & (candidates.snr < 500))
    assert candidates.n_detected == 9
    assert candidates.n_after_selection == 9
    # The brightest star is the last of the grid.
    assert candidates.x[0] == pytest.approx(GOOD_X[-1], abs=0.05)
    assert np.all(candidates.flux > 0)


def test_galaxies_are_rejected():
    extra = galaxies(tan_wcs(SHAPE), [115.0, 205.0], [115.0, 205.0], 2e5)
    candidates = select(scene(extra))
    assert candidates.n_detected == 11
    assert len(candidates) == 9
    assert_good_stars_kept(candidates)


def test_galaxies_are_rejected_without_a_psf_grid():
    # The PSF size then comes from the stars' own compact locus.
    extra = galaxies(tan_wcs(SHAPE), [115.0, 205.0], [115.0, 205.0], 2e5)
    result = scene(extra)
    science = exposure_of(result, grid=False)
    candidates = select(science, template_for(result))
    assert len(candidates) == 9
    assert_good_stars_kept(candidates)


def test_blends_are_rejected():
    extra = stars(tan_wcs(SHAPE), [115.0, 119.5], [115.0, 116.0], [1e5, 8e4])
    candidates = select(scene(extra))
    assert candidates.n_detected == 10
    assert len(candidates) == 9
    assert not has_source_near(candidates, 117.0, 115.5, 4.0)


def test_saturated_stars_are_rejected():
    extra = stars(tan_wcs(SHAPE), [205.0], [115.0], [5e6])
    result = scene(extra)
    assert np.any(result.mask & PLANES.value("SAT"))
    candidates = select(result)
    assert not has_source_near(candidates, 205.0, 115.0, 3.0)
    assert len(candidates) == 9
    # Its S/N (about 2000) already excludes it; without that cut the SAT
    # pixels at its centre still do.
    loose = replace(CONFIG, detection_threshold_max=1e9)
    candidates = select(result, config=loose)
    assert not has_source_near(candidates, 205.0, 115.0, 3.0)
    assert len(candidates) == 9


def test_too_bright_and_too_faint_stars_are_rejected():
    # No full well, so the bright star's only fault is S/N > 500.
    noise = NoiseModel(
        sky_electrons=877.0, njy_per_electron=0.548, saturation_electrons=None
    )
    extra = stars(tan_wcs(SHAPE), [115.0, 205.0], [115.0, 205.0], [2e6, 1.2e3])
    candidates = select(scene(extra, noise=noise))
    assert len(candidates) == 9
    assert not has_source_near(candidates, 115.0, 115.0, 3.0)
    assert not has_source_near(candidates, 205.0, 205.0, 3.0)


def test_signal_to_noise_window_is_applied():
    result = scene()
    everything = select(result)
    config = replace(CONFIG, detection_threshold_max=400.0)
    candidates = select(result, config=config)
    assert np.all(candidates.snr < 400)
    assert len(candidates) == np.count_nonzero(everything.snr < 400)
    assert 0 < len(candidates) < 9


def test_masked_centroids_are_rejected():
    result = scene()
    science = exposure_of(result)
    # A BAD pixel diagonal to one star's centre, in the science mask...
    science.mask[int(GOOD_Y[0]) + 1, int(GOOD_X[0]) + 1] |= PLANES.value("BAD")
    # ...and NO_DATA next to another's, in the template mask only.
    image, mask = template_for(result)
    mask[int(GOOD_Y[4]) + BORDER, int(GOOD_X[4]) + BORDER - 1] |= PLANES.value(
        "NO_DATA"
    )
    candidates = select(science, (image, mask))
    assert len(candidates) == 7
    assert candidates.n_after_selection == 7
    assert not has_source_near(candidates, GOOD_X[0], GOOD_Y[0])
    assert not has_source_near(candidates, GOOD_X[4], GOOD_Y[4])


def test_stamps_reaching_no_data_or_the_edge_are_rejected():
    # One star sits 15 px from the left edge: detected, but its 43-px
    # stamp leaves the science image.
    extra = stars(tan_wcs(SHAPE), [15.0], [205.0], [1e5])
    result = scene(extra)
    image, mask = template_for(result)
    # Template NO_DATA 15 px right of a star: inside its stamp only.
    column = int(GOOD_X[4]) + 15 + BORDER
    mask[:, column] |= PLANES.value("NO_DATA")
    candidates = select(result, (image, mask))
    assert candidates.n_after_selection == 10
    assert len(candidates) == 6  # the edge star and the column's three
    assert not has_source_near(candidates, 15.0, 205.0, 3.0)
    for x, y in zip(GOOD_X, GOOD_Y, strict=True):
        near_column = abs(x - GOOD_X[4]) < 1
        assert has_source_near(candidates, x, y, 0.1) != near_column


def test_science_sat_inside_a_stamp_rejects_it():
    result = scene()
    science = exposure_of(result)
    science.mask[int(GOOD_Y[2]) - 18, int(GOOD_X[2])] |= PLANES.value("SAT")
    candidates = select(science, template_for(result))
    assert len(candidates) == 8
    assert not has_source_near(candidates, GOOD_X[2], GOOD_Y[2])


def test_keeps_at_most_max_sources_by_snr():
    config = replace(CONFIG, max_sources=4)
    candidates = select(scene(), config=config)
    assert len(candidates) == 4
    assert candidates.n_after_selection == 4
    everything = select(scene())
    assert np.array_equal(candidates.x, everything.x[:4])


def test_too_few_candidates_raise_with_the_count():
    config = replace(CONFIG, min_sources=12)
    with pytest.raises(ProcessingError, match=r"only 9 kernel candidates"):
        select(scene(), config=config)


def test_template_of_the_wrong_shape_raises():
    result = scene()
    image, mask = template_for(result)
    with pytest.raises(ValueError, match="grown by 20"):
        select(result, (image[1:], mask[1:]))


def test_selection_is_deterministic():
    extra = SourceTable.concatenate(
        galaxies(tan_wcs(SHAPE), [115.0], [115.0], 2e5),
        stars(tan_wcs(SHAPE), [205.0, 209.0], [205.0, 205.5], [1e5, 1e5]),
    )
    result = scene(extra)

    def digest():
        candidates = select(result)
        sha = hashlib.sha256()
        for array in (candidates.x, candidates.y, candidates.snr):
            sha.update(np.ascontiguousarray(array).tobytes())
        return sha.hexdigest()

    assert digest() == digest()


def test_stage_api_is_exported():
    for name in (
        "detect",
        "measure_psf_fwhm",
        "select_kernel_candidates",
        "set_detection_planes",
        "Detections",
        "KernelCandidates",
    ):
        assert callable(getattr(sources, name))
    assert callable(match.scale_variance)


def test_few_stars_without_a_grid_use_a_gaussian_reference():
    # Four stars are too few for a locus: the PSF size is then taken as a
    # pixel-integrated Gaussian of the FWHM; a galaxy is still rejected.
    wcs = tan_wcs(SHAPE)
    table = SourceTable.concatenate(
        stars(wcs, GRID[[0, 2, 0, 2]], GRID[[0, 0, 2, 2]], 1e5),
        galaxies(wcs, [160.0], [160.0], 2e5),
    )
    result = render(SHAPE, table, fwhm=FWHM, seed=5)
    science = exposure_of(result, grid=False)
    candidates = select(science, template_for(result))
    assert candidates.n_detected == 5
    assert len(candidates) == 4
    assert not has_source_near(candidates, 160.0, 160.0, 3.0)


def test_extendedness_is_meas_base_size_extendedness():
    # 1 - exp(-chi^2 / 2), chi = (T - T_psf) / sqrt(T_psf): 0 for the PSF,
    # 0.1 at |chi| = sqrt(-2 ln 0.9), NaN for a failed measurement.
    psf_trace = np.full(5, 8.0)
    edge = np.sqrt(-2 * np.log(0.9)) * np.sqrt(8.0)
    trace = np.array([8.0, 8.0 + edge, 8.0 - edge, 12.0, np.nan])
    value = unresolved.extendedness(trace, psf_trace)
    np.testing.assert_allclose(value[:3], [0.0, 0.1, 0.1], atol=1e-12)
    assert value[3] == pytest.approx(1 - np.exp(-0.5 * 16 / 8))
    assert np.isnan(value[4])
    # RequireUnresolved keeps value < 0.1 (maximum, strict).
    assert CONFIG.unresolved_max_extendedness == 0.1
    assert unresolved.EXTENDEDNESS_EXPONENT == 0.5


def test_sources_smaller_than_the_psf_are_not_unresolved():
    # A sharp source (a cosmic-ray-like point) is as far from the PSF's
    # size as a galaxy is: the extendedness cut rejects both.
    wcs = tan_wcs(SHAPE)
    sharp = render(
        SHAPE, stars(wcs, [115.0], [205.0], [8e4]), fwhm=0.35, seed=9
    )
    result = scene()
    science = exposure_of(result)
    science.image[:] += sharp.image - np.median(sharp.image)
    candidates = select(science, template_for(result))
    assert not has_source_near(candidates, 115.0, 205.0, 3.0)
    assert_good_stars_kept(candidates)


DP2_SOURCES = replace(
    CONFIG,
    exclude_mask_planes=(*CONFIG.exclude_mask_planes, "HIGH_VARIANCE"),
    mask_check="box",
    restrict_edge_sources=True,
    fallback_selector=True,
)


def test_dp2_checks_the_whole_box_in_each_mask():
    # BAD 12 px from a star's centre: outside v29's 3x3 centroid check,
    # inside v30's 43-px box. In the template mask: the same.
    result = scene()
    science = exposure_of(result)
    science.mask[int(GOOD_Y[0]) + 12, int(GOOD_X[0])] |= PLANES.value("BAD")
    image, mask = template_for(result)
    planes = PLANES.with_planes("HIGH_VARIANCE")
    mask[int(GOOD_Y[4]) + BORDER, int(GOOD_X[4]) + BORDER - 12] |= (
        planes.value("HIGH_VARIANCE")
    )
    v29 = select_kernel_candidates(
        science,
        image,
        mask,
        planes,
        border=BORDER,
        kernel_size=KERNEL,
        science_fwhm=FWHM_PX,
        config=CONFIG,
    )
    assert len(v29) == 9
    v30 = select_kernel_candidates(
        science,
        image,
        mask,
        planes,
        border=BORDER,
        kernel_size=KERNEL,
        science_fwhm=FWHM_PX,
        config=replace(DP2_SOURCES, restrict_edge_sources=False),
    )
    assert len(v30) == 7
    # The cuts precede the trim: two are gone before it counts.
    assert v30.n_after_selection == 7
    assert not has_source_near(v30, GOOD_X[0], GOOD_Y[0])
    assert not has_source_near(v30, GOOD_X[4], GOOD_Y[4])


def test_dp2_keeps_kernel_stars_two_kernel_widths_from_the_edge():
    # With k = 35 the 71-px box must sit 35 px inside the 320-px image:
    # centres from 70 to 249. The stars at 250.3 (centre pixel 250) are
    # out, those at 70.3 and 160.3 in; with k = 21 all nine are.
    result = scene()
    strict = select(result, config=DP2_SOURCES)
    assert len(strict) == 9
    wide = select_kernel_candidates(
        exposure_of(result),
        *template_for(result),
        PLANES,
        border=BORDER,
        kernel_size=35,
        science_fwhm=FWHM_PX,
        config=replace(DP2_SOURCES, fallback_selector=False, min_sources=1),
    )
    assert len(wide) == 4
    assert np.all((wide.x < 200) & (wide.y < 200))


def test_dp2_falls_back_to_blends_only_when_too_few_stars():
    # One isolated star and two stars each with a faint neighbour 11 px
    # away (one footprint, two peaks): the main selector keeps 1 (< 3),
    # the fallback (no isolation cut) takes the two bright ones too.
    wcs = tan_wcs(SHAPE)
    table = SourceTable.concatenate(
        stars(wcs, [160.0], [160.0], [1e5]),
        stars(wcs, [100.0, 111.0], [100.0, 100.0], [1e5, 1e4]),
        stars(wcs, [220.0, 231.0], [220.0, 220.0], [1e5, 1e4]),
    )
    result = render(SHAPE, table, fwhm=FWHM, seed=5)
    with pytest.raises(ProcessingError, match="only 1 kernel candidates"):
        select(result)
    candidates = select(result, config=DP2_SOURCES)
    assert len(candidates) == 3
    # With enough isolated stars, no fallback: blends stay out.
    extra = stars(wcs, [115.0, 119.5], [115.0, 116.0], [1e5, 8e4])
    assert len(select(scene(extra), config=DP2_SOURCES)) == 9


def test_candidates_from_detections_made_beforehand_are_the_same():
    # A solve detects on the science image beside the template warp and
    # hands the detections over: the selection must not change.
    result = scene()
    science = exposure_of(result)
    made_here = select(science)
    detections = detect_candidate_sources(science, FWHM_PX, CONFIG)
    handed_over = select_kernel_candidates(
        science,
        *template_for(result),
        PLANES,
        border=BORDER,
        kernel_size=KERNEL,
        science_fwhm=FWHM_PX,
        config=CONFIG,
        detections=detections,
    )
    for name in ("x", "y", "snr", "flux"):
        assert np.array_equal(
            getattr(made_here, name), getattr(handed_over, name)
        )
    # And they are used: with every S/N zeroed, none passes the cut.
    with pytest.raises(ProcessingError, match="only 0 kernel candidates"):
        select_kernel_candidates(
            science,
            *template_for(result),
            PLANES,
            border=BORDER,
            kernel_size=KERNEL,
            science_fwhm=FWHM_PX,
            config=CONFIG,
            detections=replace(detections, snr=0.0 * detections.snr),
        )
