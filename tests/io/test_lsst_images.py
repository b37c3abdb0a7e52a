"""Difference images written as DP2-style ``lsst.images`` files."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace

import astropy.units as u
import lsst.images as li
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.time import Time
from lsst.images.psfs import GaussianPointSpreadFunction

from recreate.errors import FormatError
from recreate.exposure import Exposure, MaskPlanes, PhotoCalib, PsfInfo
from recreate.io.lsst_images import (
    KernelModel,
    TemplateProvenance,
    chebyshev_terms,
    difference_image_bytes,
    lsst_mask_plane,
    to_difference_image,
    write_lsst_images,
)
from tests.support.exposures import (
    difference_planes,
    psf_grid,
    tan_sip_wcs,
    visit_observation,
)

SHAPE = (64, 80)  # (height, width)
XY0 = (1500, 2100)
N_BASIS = 27
KERNEL_SIDE = 21
MAS = 1.0 / 3600.0 / 1000.0
METADATA = {
    "RECREATE PLANES SHA256": "0" * 64,
    "RECREATE N TEMPLATES": 2,
    "RECREATE KERNEL SUM": 0.987,
    "RECREATE KERNEL REUSED": False,
    "LSST BUTLER RUN": "LSSTComCam/runs/DRP/DP1/w_2025_03",
}


def _planes() -> MaskPlanes:
    """Return DP1-like difference planes, some with renamed names."""
    planes = difference_planes().with_planes("UNMASKEDNAN", "INEXACT_PSF")
    return planes.with_planes("RECREATE_ONLY")


def make_exposure(seed: int = 11) -> Exposure:
    rng = np.random.default_rng(seed)
    planes = _planes()
    named = planes.value(*planes.names)
    mask = rng.integers(0, 2**31 - 1, SHAPE, dtype=np.int32) & named
    return Exposure(
        image=rng.normal(0.0, 30.0, SHAPE).astype(np.float32),
        variance=rng.uniform(250.0, 400.0, SHAPE).astype(np.float32),
        mask=mask.astype(np.int32),
        mask_planes=planes,
        wcs=tan_sip_wcs(crpix=(30.5, 41.5)),
        xy0=XY0,
        psf=PsfInfo(fwhm=4.2, grid=psf_grid()),
        photo_calib=PhotoCalib(njy_per_electron=0.52),
        observation=visit_observation(),
        metadata=dict(METADATA),
    )


def make_kernel(seed: int = 3) -> KernelModel:
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(N_BASIS, KERNEL_SIDE, KERNEL_SIDE))
    coefficients = rng.normal(size=(N_BASIS, 3))
    height, width = SHAPE
    return KernelModel(
        basis=basis,
        coefficients=coefficients,
        bbox=(0, 0, width, height),
        order=1,
    )


def make_templates() -> list[TemplateProvenance]:
    # Patch boxes mapped onto the science grid: the first covers the
    # left of the image and spills out, the second the right part.
    left = np.array([[-40.0, -30.0], [45.5, -28.0], [44.5, 90.0], [-41.0, 88]])
    right = np.array([[44.0, -20.0], [200.0, -20.0], [200.0, 99.0], [44, 99]])
    return [
        TemplateProvenance(
            skymap="lsst_cells_v1",
            tract=5063,
            patch=patch,
            dataset_id=str(uuid.UUID(int=patch + 1)),
            dataset_run=f"LSSTComCam/runs/DRP/DP1/w_2025_03/{patch}",
            bounds_xy=bounds,
            psf_shape_xx=3.1,
            psf_shape_yy=3.3,
            psf_shape_xy=0.05,
        )
        for patch, bounds in ((14, left), (15, right))
    ]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    exposure, kernel, templates = (
        make_exposure(),
        make_kernel(),
        make_templates(),
    )
    path = tmp_path_factory.mktemp("lsst-images") / "difference_image.fits"
    write_lsst_images(exposure, kernel, templates, path)
    return exposure, kernel, templates, path, li.DifferenceImage.read(path)


def test_image_and_variance_round_trip(written):
    exposure, _, _, _, back = written
    assert back.image.unit == u.nJy
    assert back.variance.unit == u.nJy**2
    assert back.image.array.tobytes() == exposure.image.tobytes()
    assert back.variance.array.tobytes() == exposure.variance.tobytes()
    height, width = SHAPE
    assert (
        back.bbox
        == li.Box.factory[XY0[1] : XY0[1] + height, XY0[0] : XY0[0] + width]
    )
    assert back.bounds == back.bbox


def test_mask_planes_round_trip_through_renaming(written):
    exposure, _, _, _, back = written
    planes = exposure.mask_planes
    expected = {lsst_mask_plane(name).name for name in planes.names}
    assert set(back.mask.schema.names) == expected
    for name in planes.names:
        ours = (exposure.mask & np.int32(planes.value(name))) != 0
        theirs = back.mask.get(lsst_mask_plane(name).name)
        assert np.array_equal(theirs, ours), name
        assert ours.any(), name  # every plane is exercised


def test_legacy_plane_names_follow_lsst_images():
    renamed = {
        "SAT": "SATURATED",
        "INTRP": "INTERPOLATED",
        "CR": "COSMIC_RAY",
        "EDGE": "DETECTION_EDGE",
        "UNMASKEDNAN": "UNMASKED_NAN",
    }
    for old, new in renamed.items():
        assert lsst_mask_plane(old).name == new
    for kept in ("SAT_TEMPLATE", "NO_DATA", "DETECTED", "DETECTED_NEGATIVE"):
        assert lsst_mask_plane(kept).name == kept
    official = li.get_legacy_difference_image_mask_planes()
    assert lsst_mask_plane("SAT") == official["SAT"]
    # Planes from templates, and our own, keep their names.
    assert lsst_mask_plane("INEXACT_PSF").name == "INEXACT_PSF"
    assert lsst_mask_plane("RECREATE_ONLY").name == "RECREATE_ONLY"
    assert lsst_mask_plane("SATURATED") == official["SAT"]


def test_wcs_agrees_to_a_milliarcsecond(written):
    exposure, _, _, _, back = written
    height, width = SHAPE
    xs = np.array([0.0, width - 1.0, 0.0, width - 1.0, 37.3, -0.5])
    ys = np.array([0.0, 0.0, height - 1.0, height - 1.0, 21.7, 63.5])
    ra, dec = exposure.wcs.pixel_to_world_values(xs, ys)
    ours = SkyCoord(ra * u.deg, dec * u.deg)
    # The projection works in the parent (detector) frame ...
    parent = back.sky_projection.pixel_to_sky(x=xs + XY0[0], y=ys + XY0[1])
    assert np.all(ours.separation(parent).deg < MAS)
    # ... and its astropy view in array pixels, as ours does.
    view = back.astropy_wcs.pixel_to_world(xs, ys)
    assert np.all(ours.separation(view).deg < MAS)
    assert back.sky_projection.pixel_frame == back.detector.frame


def test_kernel_matches_the_model(written):
    _, kernel, _, _, back = written
    positions = [(0.0, 0.0), (40.0, 31.0), (79.0, 63.0), (12.5, 50.25)]
    for x, y in positions:
        ours = kernel.kernel_image(x, y)
        theirs = back.kernel.compute_kernel_image(x=x + XY0[0], y=y + XY0[1])
        assert theirs.array.shape == (KERNEL_SIDE, KERNEL_SIDE)
        scale = np.abs(ours).max()
        assert np.abs(theirs.array - ours).max() <= 1e-12 * scale, (x, y)
    half = KERNEL_SIDE // 2
    assert (
        back.kernel.kernel_bbox
        == li.Box.factory[-half : half + 1, -half : half + 1]
    )
    assert np.array_equal(back.kernel.basis, kernel.basis)


def test_kernel_model_convention():
    kernel = make_kernel()
    c = kernel.coefficients
    height, width = SHAPE
    # The box centre is (0, 0) in reduced coordinates: only T_0 remains.
    centre = kernel.kernel_image((width - 1) / 2.0, (height - 1) / 2.0)
    assert np.allclose(centre, np.tensordot(c[:, 0], kernel.basis, axes=1))
    # The outer pixel edges map to -1 and +1; terms are (1, x, y).
    corner = kernel.kernel_image(-0.5, height - 0.5)
    weights = c[:, 0] - c[:, 1] + c[:, 2]
    assert np.allclose(corner, np.tensordot(weights, kernel.basis, axes=1))
    assert chebyshev_terms(1) == [(0, 0), (0, 1), (1, 0)]
    assert chebyshev_terms(2)[3:] == [(0, 2), (1, 1), (2, 0)]


def test_second_order_kernel_matches(written):
    exposure, _, templates, _, _ = written
    rng = np.random.default_rng(8)
    kernel = KernelModel(
        basis=rng.normal(size=(4, 5, 7)),
        coefficients=rng.normal(size=(4, 6)),
        bbox=(-3, 5, 70, 50),
        order=2,
    )
    image = to_difference_image(exposure, kernel, templates)
    for x, y in [(-3.0, 5.0), (20.0, 17.5), (66.0, 54.0)]:
        ours = kernel.kernel_image(x, y)
        theirs = image.kernel.compute_kernel_image(x=x + XY0[0], y=y + XY0[1])
        assert np.allclose(theirs.array, ours, rtol=1e-12, atol=0.0)


def test_templates_round_trip_clipped_to_the_image(written):
    _, _, templates, _, back = written
    assert len(back.templates) == len(templates)
    height, width = SHAPE
    image_box = li.Polygon.from_box(back.bbox)
    for info, template in zip(back.templates, templates, strict=True):
        assert info.skymap == template.skymap
        assert (info.tract, info.patch) == (template.tract, template.patch)
        assert info.dataset_id == uuid.UUID(template.dataset_id)
        assert info.dataset_run == template.dataset_run
        assert info.instrument == "LSSTComCam"
        assert (info.psf_shape_xx, info.psf_shape_yy) == (3.1, 3.3)
        assert info.psf_shape_xy == 0.05
        assert not info.psf_shape_flag
        patch = li.Polygon(
            x_vertices=template.bounds_xy[:, 0] + XY0[0],
            y_vertices=template.bounds_xy[:, 1] + XY0[1],
        )
        assert info.bounds == patch.intersection(image_box)
    # Clipped to the image, the two patches tile it.
    total = sum(info.bounds.area for info in back.templates)
    overlap = back.templates[0].bounds.intersection(back.templates[1].bounds)
    assert total - overlap.area == pytest.approx(height * width)


def test_band_detector_and_observation(written):
    exposure, _, _, _, back = written
    observation = exposure.observation
    assert back.band == "r"
    assert back.physical_filter == "r_03"
    assert back.detector.id == 4
    assert back.detector.name == "R22_S11"
    assert back.detector.instrument == "LSSTComCam"
    assert back.detector.bbox == li.Box.factory[0:4000, 0:4072]
    assert back.detector.frame.visit == observation.visit
    info = back.obs_info
    assert info.instrument == "LSSTComCam"
    assert info.visit_id == info.exposure_id == observation.visit
    assert info.detector_num == 4
    assert info.detector_unique_name == "R22_S11"
    assert (info.detector_group, info.detector_name) == ("R22", "S11")
    assert info.observing_day == observation.day_obs
    assert info.exposure_time.to_value(u.s) == 30.0
    middle = info.datetime_begin + 0.5 * (
        info.datetime_end - info.datetime_begin
    )
    expected = Time(observation.date_avg, scale="tai")
    assert abs((middle - expected).to_value(u.s)) < 1e-6
    assert info.tracking_radec.ra.deg == pytest.approx(
        observation.boresight_ra
    )
    assert info.boresight_rotation_angle.deg == pytest.approx(271.25)
    assert info.boresight_airmass == pytest.approx(observation.airmass)


def test_psf_and_photometric_scaling(written):
    exposure, _, _, _, back = written
    assert isinstance(back.psf, GaussianPointSpreadFunction)
    assert back.psf.sigma == pytest.approx(exposure.psf.fwhm / 2.354820045)
    scaling = back.photometric_scaling
    assert scaling.unit == u.nJy / u.electron
    assert scaling(x=np.array([1600.0]), y=np.array([2150.0]))[0] == (
        pytest.approx(0.52)
    )


def test_metadata_cards_present(written):
    _, _, _, _, back = written
    assert dict(back.metadata) == METADATA


def test_bytes_decode_to_the_same_content(written):
    # The bytes are not reproducible: lsst.images stamps each HDU with
    # the write time (DATE) and astropy's GZIP codec each compressed
    # tile with the current second. The decoded content must agree.
    exposure, kernel, templates, path, back = written
    data = difference_image_bytes(exposure, kernel, templates)
    assert data.startswith(b"SIMPLE  =")
    assert len(data) == path.stat().st_size
    again = li.DifferenceImage.read(io.BytesIO(data))
    assert again.image.array.tobytes() == back.image.array.tobytes()
    assert again.variance.array.tobytes() == back.variance.array.tobytes()
    assert again.mask == back.mask
    assert again.templates == back.templates
    assert dict(again.metadata) == dict(back.metadata)
    assert again.obs_info == back.obs_info
    assert again.detector == back.detector
    assert again.sky_projection == back.sky_projection
    assert again.psf == back.psf
    assert np.array_equal(again.kernel.basis, back.kernel.basis)
    assert list(again.kernel.spatial) == list(back.kernel.spatial)


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "d.fits"
    args = (make_exposure(), make_kernel(), make_templates())
    write_lsst_images(*args, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_lsst_images(*args, path)
    assert path.read_bytes() == before
    write_lsst_images(*args, path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["d.fits"]
    bad = replace(make_exposure(), wcs=None)
    with pytest.raises(FormatError):
        write_lsst_images(
            bad, make_kernel(), make_templates(), path, overwrite=True
        )
    assert [p.name for p in tmp_path.iterdir()] == ["d.fits"]
    with pytest.raises(FileNotFoundError):
        write_lsst_images(*args, tmp_path / "no" / "d.fits")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"wcs": None}, ["WCS"]),
        ({"observation": None}, ["observation info"]),
        ({"psf": None}, ["PSF"]),
        ({"wcs": None, "observation": None}, ["WCS", "observation info"]),
    ],
)
def test_missing_parts_are_named(change, named):
    exposure = replace(make_exposure(), **change)
    with pytest.raises(FormatError) as caught:
        to_difference_image(exposure, make_kernel(), make_templates())
    for what in named:
        assert what in str(caught.value)


def test_missing_observation_fields_are_named():
    observation = replace(
        visit_observation(), physical_filter=None, detector=None
    )
    exposure = replace(make_exposure(), observation=observation)
    with pytest.raises(FormatError, match=r"physical_filter.*detector"):
        to_difference_image(exposure, make_kernel(), make_templates())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instrument": "DECam"}, "LSSTComCam only"),
        ({"detector_name": "R22_S12"}, "does not match"),
        ({"detector": 9, "detector_name": None}, "0-8"),
    ],
)
def test_unsupported_observations_are_refused(change, message):
    observation = replace(visit_observation(), **change)
    exposure = replace(make_exposure(), observation=observation)
    with pytest.raises(FormatError, match=message):
        to_difference_image(exposure, make_kernel(), make_templates())


def test_image_off_the_detector_is_refused():
    exposure = replace(make_exposure(), xy0=(4050, 10))
    with pytest.raises(FormatError, match="does not fit on detector"):
        to_difference_image(exposure, make_kernel(), make_templates())


def test_unnamed_mask_bit_is_refused():
    exposure = make_exposure()
    exposure.mask[3, 4] |= np.int32(-(2**31))
    with pytest.raises(FormatError, match=r"mask bits \[31\]"):
        to_difference_image(exposure, make_kernel(), make_templates())


def test_a_template_covering_only_the_border_is_left_out():
    # GetTemplate's 20-px border can bring in a patch that gives no pixel
    # of the image; lsst.images cannot store an empty overlap.
    near, *_ = make_templates()
    far = replace(
        near,
        bounds_xy=np.array([[500.0, 500.0], [600, 500], [600, 600]]),
    )
    image = to_difference_image(make_exposure(), make_kernel(), [near, far])
    assert len(image.templates) == 1


def test_bad_inputs_are_refused():
    template = make_templates()[0]
    with pytest.raises(FormatError, match="not a UUID"):
        replace(template, dataset_id="not-a-uuid")
    with pytest.raises(FormatError, match="bounds_xy"):
        replace(template, bounds_xy=np.zeros((2, 2)))
    kernel = make_kernel()
    with pytest.raises(FormatError, match="coefficients"):
        replace(kernel, coefficients=kernel.coefficients[:, :2])
    with pytest.raises(FormatError, match="odd"):
        replace(kernel, basis=kernel.basis[:, :20, :])


def test_other_units_carry_their_calibration():
    exposure = make_exposure()
    exposure.metadata["BUNIT"] = "adu"
    exposure.photo_calib = PhotoCalib(calibration=8.5)
    image = to_difference_image(exposure, make_kernel(), make_templates())
    assert image.unit == u.adu
    assert image.photometric_scaling.unit == u.nJy / u.adu
    assert "BUNIT" not in image.metadata
    exposure.photo_calib = PhotoCalib(calibration=2.0)
    exposure.metadata["BUNIT"] = "nJy"
    with pytest.raises(FormatError, match="calibration"):
        to_difference_image(exposure, make_kernel(), make_templates())


def test_mask_plane_at_bit_31():
    exposure = make_exposure()
    planes = MaskPlanes({**exposure.mask_planes.bits, "TOP_BIT": 31})
    exposure.mask_planes = planes
    exposure.mask[5, 6] |= np.int32(-(2**31))
    image = to_difference_image(exposure, make_kernel(), make_templates())
    top = image.mask.get("TOP_BIT")
    assert top[5, 6]
    assert top.sum() == 1
