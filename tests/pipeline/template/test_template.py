"""GetTemplateTask: patches warped and stitched onto a science grid."""

from dataclasses import replace

import numpy as np
import pytest
from astropy.wcs import WCS, Sip

from recreate.errors import FormatError, InvalidRequestError, NoOverlapError
from recreate.exposure import Exposure, MaskPlanes, ObservationInfo, PsfInfo
from recreate.pipeline.config import TemplateConfig
from recreate.pipeline.template.build import build_template
from recreate.pipeline.template.lanczos import LANCZOS_ORDER, lanczos_weights
from recreate.pipeline.template.patches import PatchCutout, PatchFrame
from recreate.pipeline.template.tracts import READ_MARGIN, patch_read_box
from recreate.skymap import PatchGeometry, Tract

# Small patches (140 px outer) keep the tests fast; the geometry is
# lsst_cells_v1's, scaled down.
GEOM = PatchGeometry(
    patch_inner=100, patch_border=20, patches_per_side=10, pixel_scale=0.2
)
TRACT = Tract(7, 53.0, -28.0, GEOM)
BORDER = TemplateConfig().border
PLANES = MaskPlanes.afw_default()
NO_DATA = PLANES.value("NO_DATA")
BAD = PLANES.value("BAD")


def _value(x, y):
    """Smooth pixel values as a function of tract parent pixels."""
    return 50.0 + 10.0 * np.sin(0.11 * x) + 7.0 * np.cos(0.07 * y)


def _patch(
    patch, *, tract=TRACT, value=_value, variance=1.0, fwhm=3.0, stars=()
):
    x0, y0, width, height = tract.patch_outer_bbox(patch)
    yy, xx = np.mgrid[y0 : y0 + height, x0 : x0 + width].astype(float)
    image = value(xx, yy)
    wcs = tract.patch_wcs(patch)
    for ra, dec, flux in stars:
        sx, sy = wcs.world_to_pixel_values(ra, dec)
        image = image + _star(xx - x0, yy - y0, sx, sy, flux)
    return Exposure(
        image=image.astype(np.float32),
        variance=np.full((height, width), variance, np.float32),
        mask=np.zeros((height, width), np.int32),
        wcs=wcs,
        xy0=(x0, y0),
        psf=None if fwhm is None else PsfInfo(fwhm),
        observation=ObservationInfo(
            "LSSTComCam", "r", skymap="test", tract=tract.tract_id, patch=patch
        ),
    )


def _dark(x, _):
    return 0.0 * x


def _star(x, y, x0, y0, flux, sigma=2.0):
    r2 = (x - x0) ** 2 + (y - y0) ** 2
    return flux * np.exp(-r2 / (2 * sigma**2)) / (2 * np.pi * sigma**2)


def _science_wcs(origin, *, rotation=0.0, scale=0.2, sip=False):
    """Return a TAN(-SIP) WCS sharing the tract's tangent point.

    Array pixel (0, 0) is tract pixel ``origin``; unrotated, array pixel
    (x, y) is tract pixel ``origin + (x, y) * scale / 0.2`` exactly.
    """
    tangent = (GEOM.tract_inner - 1) / 2.0  # 0-based tract pixel
    zoom = scale / GEOM.pixel_scale
    theta = np.radians(rotation)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [TRACT.ra, TRACT.dec]
    wcs.wcs.crpix = [
        1 + (tangent - origin[0]) / zoom,
        1 + (tangent - origin[1]) / zoom,
    ]
    wcs.wcs.cd = (scale / 3600.0) * np.array(
        [[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    )
    if sip:
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        a = np.zeros((3, 3))
        b = np.zeros((3, 3))
        a[2, 0], b[0, 2], a[1, 1] = 2e-6, -1.5e-6, 1e-6
        wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def _science(origin, shape=(60, 70), **kwargs):
    return Exposure(
        image=np.zeros(shape, np.float32),
        variance=np.ones(shape, np.float32),
        mask=np.zeros(shape, np.int32),
        wcs=_science_wcs(origin, **kwargs),
        xy0=(100, 200),
        observation=ObservationInfo(
            "LSSTComCam", "r", physical_filter="r_03", visit=1234, detector=5
        ),
    )


def _source_positions(template, tract=TRACT):
    """Exact tract parent position of every template pixel."""
    height, width = template.exposure.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    ra, dec = template.exposure.wcs.pixel_to_world_values(xx, yy)
    return tract.wcs().world_to_pixel_values(ra, dec)


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------


def test_whole_pixel_offset_reproduces_the_patch_pixels():
    origin = (430, 445)
    patches = [_patch(p, variance=1.0 + p % 10) for p in (77, 45, 44, 55, 54)]
    template = build_template(_science(origin), patches)
    exposure = template.exposure
    assert exposure.shape == (60 + 2 * BORDER, 70 + 2 * BORDER)
    assert exposure.xy0 == (100 - BORDER, 200 - BORDER)
    yy, xx = np.mgrid[0:100, 0:110]
    parent_x, parent_y = xx + origin[0] - BORDER, yy + origin[1] - BORDER
    expected = _value(parent_x, parent_y).astype(np.float32)
    assert np.array_equal(exposure.image, expected)
    assert not exposure.mask.any()
    assert template.coverage == 1.0
    assert template.warnings == ()
    assert template.psf_fwhm == pytest.approx(3.0)
    # Patch 77 does not overlap but keeps its place in patch_bounds.
    assert len(template.patch_bounds) == 5
    x0, y0, _, _ = TRACT.patch_outer_bbox(45)
    corner = np.array([x0 - 0.5 - origin[0], y0 - 0.5 - origin[1]])
    np.testing.assert_allclose(template.patch_bounds[1][0], corner, atol=1e-6)
    obs = exposure.observation
    assert (obs.visit, obs.detector, obs.band, obs.skymap) == (
        1234,
        5,
        "r",
        "test",
    )


def test_template_wcs_is_the_science_wcs_shifted_by_the_border():
    science = _science((430, 445), rotation=3.0, sip=True)
    template = build_template(science, [_patch(p) for p in (44, 45, 54, 55)])
    x = np.array([0.0, 17.5, 69.0])
    y = np.array([0.0, 33.0, 59.0])
    want = science.wcs.pixel_to_world_values(x, y)
    got = template.exposure.wcs.pixel_to_world_values(x + BORDER, y + BORDER)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


# --------------------------------------------------------------------------
# Stitching
# --------------------------------------------------------------------------


def test_overlap_is_an_inverse_sigma_weighted_average():
    # Patches 44 and 45 overlap in tract x 480-519; 44 has variance 4
    # and value 10, 45 variance 16 and value 16.
    left = _patch(44, value=lambda x, _: 10.0 + 0 * x, variance=4.0)
    right = _patch(45, value=lambda x, _: 16.0 + 0 * x, variance=16.0)
    left.mask[:] = BAD
    # A NaN hole in 44 and a NO_DATA hole in 45, both in the overlap.
    left.image[50:60, 105:110] = np.nan  # tract x 485-489, y 430-439
    right.mask[60:70, 32:36] = NO_DATA  # tract x 512-515, y 440-449
    origin = (470, 420)
    template = build_template(_science(origin, shape=(40, 40)), [left, right])
    exposure = template.exposure

    def at(x, y):  # template pixel of tract pixel (x, y)
        return y - origin[1] + BORDER, x - origin[0] + BORDER

    w_left, w_right = 0.5, 0.25
    assert exposure.image[at(500, 420)] == pytest.approx(12.0, rel=1e-6)
    # The variance is averaged with the same weights, not summed.
    assert exposure.variance[at(500, 420)] == pytest.approx(
        (w_left * 4 + w_right * 16) / (w_left + w_right), rel=1e-6
    )
    assert exposure.mask[at(500, 420)] == BAD
    assert exposure.image[at(470, 420)] == 10.0  # 44 only
    assert exposure.image[at(487, 435)] == 16.0  # hole in 44: from 45
    assert exposure.variance[at(487, 435)] == 16.0
    assert exposure.mask[at(487, 435)] == 0
    assert exposure.image[at(513, 445)] == 10.0  # hole in 45: from 44
    assert exposure.mask[at(513, 445)] == BAD


def test_uncovered_pixels_are_nan_inf_and_no_data():
    # Patch 44 spans tract x 380-519; the science box reaches 539.5 and
    # the grown box 559.5. A pixel is an afw edge pixel when its Lanczos
    # footprint, floor(x) - 2 ... floor(x) + 3, leaves the patch: from
    # x = 517 on. Half-pixel positions keep floor() clear of rounding.
    origin = (470.5, 430)
    template = build_template(_science(origin, shape=(40, 70)), [_patch(44)])
    exposure = template.exposure
    tract_x = np.arange(exposure.shape[1]) + origin[0] - BORDER
    missing = (exposure.mask & NO_DATA) != 0
    assert np.array_equal(missing.all(axis=0), tract_x >= 517)
    assert not missing[:, tract_x < 517].any()
    assert np.all(np.isnan(exposure.image[missing]))
    assert np.all(exposure.variance[missing] == np.inf)
    assert np.all(np.isfinite(exposure.image[~missing]))
    # Coverage counts the science box only: 470.5-516.5 of 470.5-539.5.
    assert template.coverage == pytest.approx(47 / 70)


def test_no_data_holes_grow_by_at_most_one_pixel():
    """A hole inside a patch, warped through a rotation.

    Implemented (afw's Warper, v29's merge): the hole holds image 0,
    variance 0 and NO_DATA in the merged tract image; the mask is warped
    with the bilinear kernel, so a template pixel is NO_DATA exactly when
    the 2x2 source pixels around its source position touch the hole; the
    Lanczos footprint is not used for NO_DATA, and the pixels whose 6x6
    footprint touches the hole but not their 2x2 keep a finite value,
    computed with zeros in the hole.
    """
    patch = _patch(44, value=lambda x, _: 5.0 + 0 * x)
    patch.image[60:70, 80:92] = np.nan  # tract x 460-471, y 440-449
    patch.mask[60:70, 80:92] = NO_DATA
    template = build_template(
        _science((440, 420), shape=(50, 50), rotation=7.0), [patch]
    )
    exposure = template.exposure
    sx, sy = _source_positions(template)
    inside = (sx > 390) & (sx < 510) & (sy > 390) & (sy < 510)
    ix, iy = np.floor(sx), np.floor(sy)
    near = (ix >= 459) & (ix <= 471) & (iy >= 439) & (iy <= 449)
    in_hole = (sx >= 459.5) & (sx < 471.5) & (sy >= 439.5) & (sy < 449.5)
    missing = (exposure.mask & NO_DATA) != 0
    assert in_hole.sum() > 100
    assert np.array_equal(missing[inside], near[inside])
    assert np.all(missing[in_hole])
    assert np.all(np.isnan(exposure.image[missing]))
    assert np.all(np.isfinite(exposure.image[~missing]))
    # Pixels whose Lanczos footprint reaches the hole keep a finite,
    # zero-weighted value: 5 times the weight of the taps outside it.
    ring = inside & ~near & (ix >= 457) & (ix <= 473) & (iy >= 437)
    ring &= iy <= 451
    assert ring.sum() > 50
    for r, c in np.argwhere(ring)[:: max(1, ring.sum() // 25)]:
        wx = lanczos_weights(3, np.array([sx[r, c] - ix[r, c]]))[0]
        wy = lanczos_weights(3, np.array([sy[r, c] - iy[r, c]]))[0]
        cols = ix[r, c] + np.arange(-2, 4)
        rows = iy[r, c] + np.arange(-2, 4)
        hole = ((rows >= 440) & (rows <= 449))[:, None] & (
            (cols >= 460) & (cols <= 471)
        )[None, :]
        expected = 5.0 * (np.outer(wy, wx) * ~hole).sum()
        assert exposure.image[r, c] == pytest.approx(expected, rel=1e-4)


def test_two_tracts_with_their_own_projections_are_stitched():
    # Tract B is centred 0.04 deg east: its TAN projection differs from
    # A's. B covers the whole science image; A only its patch column 1,
    # whose data end at A x = 219 (usable while floor(x) <= 216): the
    # edge of A's coverage runs through the second star, at A x = 216.
    tract_b = Tract(8, 53.04, -28.0, GEOM)
    science = Exposure(
        image=np.zeros((80, 90), np.float32),
        variance=np.ones((80, 90), np.float32),
        mask=np.zeros((80, 90), np.int32),
        wcs=_centred_wcs(53.02, -28.0, (45.0, 40.0), rotation=20.0),
        observation=ObservationInfo("LSSTComCam", "r", visit=1, detector=2),
    )
    second = TRACT.wcs().pixel_to_world_values(216.0, 505.0)
    stars = [
        (53.02, -28.0, 1000.0),
        (float(second[0]), float(second[1]), 800.0),
    ]
    corners = science.corners_sky().T
    tract_a = [
        _patch(p, tract=TRACT, value=_dark, stars=stars)
        for p in TRACT.patches_overlapping(*corners)
        if TRACT.patch_xy(p)[0] == 1
    ]
    patches = tract_a + [
        _patch(p, tract=tract_b, value=_dark, stars=stars)
        for p in tract_b.patches_overlapping(*corners)
    ]
    template = build_template(science, patches)
    assert template.coverage == 1.0
    for ra, dec, flux in stars:
        _assert_star(template.exposure, ra, dec, flux)
    # Tract A alone leaves NO_DATA through the second star, and gives the
    # first one just as the stitched template does.
    alone = build_template(science, tract_a)
    x, y = alone.exposure.wcs.world_to_pixel_values(*stars[1][:2])
    missing = alone.exposure.mask[int(y) - 5 : int(y) + 6, int(x) - 5 :]
    assert 0 < np.count_nonzero(missing & NO_DATA) < missing.size
    _assert_star(alone.exposure, *stars[0])


def _assert_star(exposure, ra, dec, flux):
    """Check a star's flux (to 1e-3) and centroid (to 0.01 px)."""
    x, y = exposure.wcs.world_to_pixel_values(ra, dec)
    image = exposure.image.astype(float)
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    near = np.hypot(xx - x, yy - y) < 15
    total = image[near].sum()
    assert total == pytest.approx(flux, rel=1e-3)
    assert abs((xx * image)[near].sum() / total - x) < 0.01
    assert abs((yy * image)[near].sum() / total - y) < 0.01


def _centred_wcs(ra, dec, centre, *, rotation):
    theta = np.radians(rotation)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [centre[0] + 1, centre[1] + 1]
    wcs.wcs.cd = (0.2 / 3600.0) * np.array(
        [[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    )
    wcs.wcs.set()
    return wcs


def test_patches_with_other_mask_bits_are_remapped():
    other = MaskPlanes({"NO_DATA": 8, "BAD": 12, "SAT": 1})
    patch = _patch(44)
    patch.mask_planes = other
    patch.mask[:, :] = 1 << 12  # BAD, in this patch's numbering
    template = build_template(_science((430, 430), shape=(30, 30)), [patch])
    planes = template.exposure.mask_planes
    assert planes.bit("BAD") == 12
    assert np.all(
        template.exposure.mask[BORDER:-BORDER, BORDER:-BORDER] == 1 << 12
    )
    first = _patch(44)
    second = _patch(45)
    second.mask_planes = other
    second.mask[:, :] = 1 << 12
    template = build_template(
        _science((500, 430), shape=(30, 30)), [first, second]
    )
    planes = template.exposure.mask_planes
    assert planes.bit("BAD") == 0  # the first patch's numbering wins
    assert template.exposure.mask[BORDER, BORDER] == BAD


# --------------------------------------------------------------------------
# Coverage, PSF, errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "columns"), [(489.5, 28), (502.5, 15)]
)  # patch 44 has data up to tract x 519: usable while floor(x) <= 516
def test_coverage_is_the_science_fraction_with_data(start, columns):
    science = _science((start, 430), shape=(40, 100))
    template = build_template(science, [_patch(44)])
    assert template.coverage == pytest.approx(columns / 100)
    if columns < 20:
        expected = (
            "template covers only 15.0% of visit 1234 detector 5; "
            "expected >= 20%"
        )
        assert template.warnings == (expected,)
    else:
        assert template.warnings == ()


def test_too_little_coverage_is_refused_with_the_percentage():
    science = _science((512.5, 430), shape=(40, 100))
    with pytest.raises(
        NoOverlapError,
        match=r"template covers 5\.0% of visit 1234 detector 5; need >= 10%",
    ):
        build_template(science, [_patch(44)])


def test_no_overlap_is_refused():
    # The grown border reaches patch 44, the science box does not: v29
    # keeps only patches that overlap the science box itself.
    science = _science((525, 430), shape=(40, 100))
    with pytest.raises(
        NoOverlapError, match="no template patch overlaps visit 1234"
    ):
        build_template(science, [_patch(44)])
    with pytest.raises(NoOverlapError, match="no template patch"):
        build_template(science, [])


def test_psf_fwhm_is_scaled_and_weighted_by_covered_pixels():
    # Science pixels are 0.4": the patches' FWHM halves in them. The
    # science box spans tract x 439-519: patch 44 (to 519.5) covers all
    # 40 columns, patch 45 (from 479.5) 19.75 of them.
    science = _science((440, 440), shape=(30, 40), scale=0.4)
    patches = [_patch(44, fwhm=3.0), _patch(45, fwhm=5.0)]
    template = build_template(science, patches)
    area_44 = 40.0  # science pixels per row
    area_45 = (519.0 - 479.5) / 2.0
    expected = 0.5 * (3.0 * area_44 + 5.0 * area_45) / (area_44 + area_45)
    assert template.psf_fwhm == pytest.approx(expected, rel=1e-6)
    assert template.exposure.psf.fwhm == pytest.approx(expected, rel=1e-6)
    no_psf = build_template(science, [_patch(44, fwhm=None)])
    assert no_psf.psf_fwhm is None and no_psf.exposure.psf is None


def test_two_runs_give_identical_bytes():
    science = _science((430, 445), rotation=11.0, sip=True)
    patches = [_patch(p, variance=1.0 + p % 7) for p in (44, 45, 54, 55)]
    first = build_template(science, patches).exposure.plane_hash()
    second = build_template(science, list(reversed(patches)))
    assert second.exposure.plane_hash() == first


def test_bad_inputs_are_refused():
    science = _science((430, 430))
    with pytest.raises(InvalidRequestError, match="lanczos5"):
        build_template(
            science, [_patch(44)], TemplateConfig(warping_kernel="lanczos5")
        )
    moved = _patch(45)
    moved.xy0 = (moved.xy0[0] + 3, moved.xy0[1])
    with pytest.raises(FormatError, match="disagree on the tract WCS"):
        build_template(science, [_patch(44), moved])
    other_band = _patch(45)
    other_band.observation = ObservationInfo(
        "LSSTComCam", "g", tract=7, patch=45
    )
    with pytest.raises(FormatError, match="mix bands"):
        build_template(science, [_patch(44), other_band])
    many = [_patch(10 * y + x) for y in range(2, 8) for x in range(2, 8)]
    with pytest.raises(InvalidRequestError, match="at most 16"):
        build_template(_science((300.5, 300.5), shape=(450, 450)), many)
    science.wcs = None
    with pytest.raises(FormatError, match="no celestial WCS"):
        build_template(science, [_patch(44)])


# --------------------------------------------------------------------------
# Cut-outs: only the pixels the template can depend on
# --------------------------------------------------------------------------


def _cut(patch, box):
    """Return the part of a whole patch in ``box``, with its frame.

    What `recreate.io.read_dp1_region` and the caller make of a file:
    the box clipped to the patch, its planes, its origin, the WCS of its
    array pixels, and the whole patch's frame.
    """
    height, width = patch.shape
    x0 = min(max(box.x0 - patch.xy0[0], 0), width)
    y0 = min(max(box.y0 - patch.xy0[1], 0), height)
    x1 = min(max(box.x0 + box.width - patch.xy0[0], x0), width)
    y1 = min(max(box.y0 + box.height - patch.xy0[1], y0), height)
    window = (slice(y0, y1), slice(x0, x1))
    cut = replace(
        patch,
        image=patch.image[window].copy(),
        variance=patch.variance[window].copy(),
        mask=patch.mask[window].copy(),
        wcs=patch.wcs.slice(window),
        xy0=(patch.xy0[0] + x0, patch.xy0[1] + y0),
    )
    frame = PatchFrame(patch.wcs, patch.xy0, patch.shape)
    return PatchCutout.of(cut, frame)


def _needed(patch, science):
    """Return the cut-out of a patch that patch_read_box names."""
    frame = PatchFrame(patch.wcs, patch.xy0, patch.shape)
    box = patch_read_box(science, frame, BORDER)
    assert box is not None
    return _cut(patch, box)


def _masked_patch(patch_id, **kwargs):
    """Return a patch with holes and scattered mask bits, EDGE included."""
    patch = _patch(patch_id, **kwargs)
    rng = np.random.default_rng(patch_id)
    bits = PLANES.value("BAD", "SAT", "EDGE", "DETECTED")
    patch.mask[:] = rng.integers(0, 1 << 10, patch.shape) & bits
    patch.mask[rng.random(patch.shape) < 0.9] = 0
    patch.image[rng.random(patch.shape) < 0.002] = np.nan
    patch.mask[rng.random(patch.shape) < 0.002] |= NO_DATA
    return patch


def _two_tract_scene():
    tract_b = Tract(8, 53.04, -28.0, GEOM)
    science = Exposure(
        image=np.zeros((80, 90), np.float32),
        variance=np.ones((80, 90), np.float32),
        mask=np.zeros((80, 90), np.int32),
        wcs=_centred_wcs(53.02, -28.0, (45.0, 40.0), rotation=20.0),
        observation=ObservationInfo("LSSTComCam", "r", visit=1, detector=2),
    )
    corners = science.corners_sky().T
    patches = [
        _masked_patch(p, tract=TRACT, variance=1.0 + p % 3)
        for p in TRACT.patches_overlapping(*corners)
        if TRACT.patch_xy(p)[0] == 1
    ] + [
        _masked_patch(p, tract=tract_b, variance=2.0 + p % 5)
        for p in tract_b.patches_overlapping(*corners)
    ]
    return science, patches


SCENES = {
    "offset, one patch missed": lambda: (
        _science((430, 445)),
        [_patch(p, variance=1.0 + p % 10) for p in (77, 45, 44, 55, 54)],
    ),
    "rotated TAN-SIP, masks": lambda: (
        _science((430, 445), rotation=11.0, sip=True),
        [_masked_patch(p, variance=1.0 + p % 7) for p in (44, 45, 54, 55)],
    ),
    "edge of the patches": lambda: (
        _science((470.5, 430), shape=(40, 70)),
        [_masked_patch(44)],
    ),
    "coarser science pixels": lambda: (
        _science((440, 440), shape=(30, 40), scale=0.4, rotation=5.0),
        [_patch(44, fwhm=3.0), _patch(45, fwhm=5.0, variance=3.0)],
    ),
    "two tracts": _two_tract_scene,
}


def _assert_same_template(got, want):
    """Check two templates agree bit for bit, bounds and all."""
    assert got.exposure.plane_hash() == want.exposure.plane_hash()
    assert got.exposure.image.tobytes() == want.exposure.image.tobytes()
    assert got.exposure.xy0 == want.exposure.xy0
    assert got.exposure.mask_planes == want.exposure.mask_planes
    assert got.exposure.wcs.to_header_string(
        relax=True
    ) == want.exposure.wcs.to_header_string(relax=True)
    assert got.coverage == want.coverage
    assert got.psf_fwhm == want.psf_fwhm
    assert got.warnings == want.warnings
    assert len(got.patch_bounds) == len(want.patch_bounds)
    for mine, theirs in zip(got.patch_bounds, want.patch_bounds, strict=True):
        assert mine.tobytes() == theirs.tobytes()


@pytest.mark.parametrize("scene", list(SCENES))
def test_cutouts_give_the_template_of_whole_patches(scene):
    science, patches = SCENES[scene]()
    cutouts = [_needed(p, science) for p in patches]
    # The test means something only if pixels were left out.
    assert sum(c.image.size for c in cutouts) < sum(
        p.image.size for p in patches
    )
    want = build_template(science, patches)
    _assert_same_template(build_template(science, cutouts), want)
    # Cut-outs and whole patches mixed, in another order, agree too.
    mixed = [
        c if i % 2 else p
        for i, (p, c) in enumerate(zip(patches, cutouts, strict=True))
    ]
    again = build_template(science, mixed[::-1])
    assert again.exposure.plane_hash() == want.exposure.plane_hash()


def test_a_patch_the_science_image_misses_needs_no_pixel():
    science = _science((430, 445))
    missed = _needed(_patch(77), science)
    assert missed.image.size == 0
    assert missed.frame.shape == _patch(77).shape


def test_a_cutout_short_of_the_needed_pixels_changes_the_template():
    # The converse, so that the tests above can fail: drop the pixels of
    # the needed box's outer rows and columns, inside the tract region.
    science, patches = SCENES["rotated TAN-SIP, masks"]()
    want = build_template(science, patches)
    short = []
    for patch in patches:
        frame = PatchFrame(patch.wcs, patch.xy0, patch.shape)
        box = patch_read_box(science, frame, BORDER)
        inset = READ_MARGIN + LANCZOS_ORDER + 2
        short.append(
            _cut(
                patch,
                type(box)(
                    box.x0 + inset,
                    box.y0 + inset,
                    box.width - 2 * inset,
                    box.height - 2 * inset,
                ),
            )
        )
    got = build_template(science, short)
    assert got.exposure.plane_hash() != want.exposure.plane_hash()


def test_read_box_needs_both_wcs():
    patch = _patch(44)
    frame = PatchFrame(patch.wcs, patch.xy0, patch.shape)
    science = _science((430, 445))
    science.wcs = None
    assert patch_read_box(science, frame, BORDER) is None


def test_a_cutout_must_lie_in_its_patch():
    patch = _patch(44)
    frame = PatchFrame(patch.wcs, (patch.xy0[0] + 5, patch.xy0[1]), (140, 140))
    with pytest.raises(FormatError, match="leaves its patch"):
        PatchCutout.of(patch, frame)
