"""Round trips of every Exposure field through write_dp1 / read_dp1."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from recreate.exposure import Exposure, MaskPlanes, PsfInfo
from recreate.io import read_dp1, write_dp1
from recreate.io.dp1 import dp1_hdulist
from tests.support.exposures import (
    coadd_observation,
    make_exposure,
    tan_sip_wcs,
)


def _round_trip(exposure: Exposure, tmp_path, *, compress: bool) -> Exposure:
    path = tmp_path / "exposure.fits"
    write_dp1(exposure, path, compress=compress)
    return read_dp1(path)


@pytest.mark.parametrize("compress", [True, False])
def test_planes_round_trip_bit_exact(tmp_path, compress):
    exposure = make_exposure()
    back = _round_trip(exposure, tmp_path, compress=compress)
    # Compare bytes, not values: NaN payloads and -0.0 must survive too.
    assert back.image.dtype == np.float32
    assert back.mask.dtype == np.int32
    assert back.variance.dtype == np.float32
    assert back.image.tobytes() == exposure.image.tobytes()
    assert back.variance.tobytes() == exposure.variance.tobytes()
    assert back.mask.tobytes() == exposure.mask.tobytes()
    assert back.plane_hash() == exposure.plane_hash()


def test_compressed_planes_are_lossless_gzip2(tmp_path):
    path = tmp_path / "c.fits"
    write_dp1(make_exposure(), path, compress=True)
    with fits.open(path, disable_image_compression=True) as raw:
        tables = {hdu.header["EXTNAME"]: hdu.header for hdu in raw[1:4]}
    assert set(tables) == {"IMAGE", "MASK", "VARIANCE"}
    for header in tables.values():
        assert header["ZCMPTYPE"] == "GZIP_2"
        # A quantized float plane would carry ZSCALE/ZZERO columns.
        columns = [
            header[f"TTYPE{i}"] for i in range(1, header["TFIELDS"] + 1)
        ]
        assert "ZSCALE" not in columns


def test_uncompressed_planes_are_plain_image_hdus(tmp_path):
    path = tmp_path / "u.fits"
    write_dp1(make_exposure(), path, compress=False)
    with fits.open(path) as hdulist:
        kinds = [type(hdu) for hdu in hdulist[1:4]]
        labels = [
            (hdu.header["EXTNAME"], hdu.header["EXTTYPE"])
            for hdu in hdulist[1:4]
        ]
        assert hdulist[1].header["BUNIT"] == "nJy"
        assert hdulist[3].header["BUNIT"] == "nJy**2"
        assert hdulist[2].header["INHERIT"] is True
    assert kinds == [fits.ImageHDU] * 3
    assert labels == [(p, p) for p in ("IMAGE", "MASK", "VARIANCE")]


@pytest.mark.parametrize("compress", [True, False])
def test_tan_sip_wcs_round_trip_below_a_milliarcsecond(tmp_path, compress):
    exposure = make_exposure()
    back = _round_trip(exposure, tmp_path, compress=compress)
    assert back.wcs is not None
    assert back.wcs.sip is not None
    # A grid over a whole 4k detector, where the SIP terms are largest.
    xs, ys = np.meshgrid(np.linspace(0, 4000, 21), np.linspace(0, 4072, 21))
    want = exposure.require_wcs().pixel_to_world(xs.ravel(), ys.ravel())
    got = back.wcs.pixel_to_world(xs.ravel(), ys.ravel())
    assert np.max(want.separation(got).to_value("mas")) < 1.0
    # The distortion must really be there, not just agree by accident.
    linear = tan_sip_wcs(sip=False).pixel_to_world(0.0, 0.0)
    assert linear.separation(got[0]).to_value("arcsec") > 0.05


def test_wcs_absent_stays_absent(tmp_path):
    exposure = make_exposure()
    exposure.wcs = None
    back = _round_trip(exposure, tmp_path, compress=True)
    assert back.wcs is None


@pytest.mark.parametrize("xy0", [(0, 0), (1234, -56), (-4000, 3999)])
def test_xy0_round_trip(tmp_path, xy0):
    exposure = make_exposure()
    exposure.xy0 = xy0
    back = _round_trip(exposure, tmp_path, compress=False)
    assert back.xy0 == xy0
    with fits.open(tmp_path / "exposure.fits") as hdulist:
        header = hdulist["MASK"].header
        assert (header["LTV1"], header["LTV2"]) == (-xy0[0], -xy0[1])
        assert (header["CRVAL1A"], header["CRVAL2A"]) == xy0
        assert header["CTYPE1A"] == "LINEAR"


def test_mask_planes_round_trip_with_high_and_long_names(tmp_path):
    exposure = make_exposure()
    exposure.mask_planes = exposure.mask_planes.with_planes(
        "INJECTED_CORE_TEMPLATE"
    )
    back = _round_trip(exposure, tmp_path, compress=True)
    assert dict(back.mask_planes.bits) == dict(exposure.mask_planes.bits)
    assert back.mask_planes.bit("SAT_TEMPLATE") == 20
    assert back.mask_planes.bit("DETECTED_NEGATIVE") == 6
    with fits.open(tmp_path / "exposure.fits") as hdulist:
        header = hdulist["MASK"].header
        assert header["MP_SAT_TEMPLATE"] == 20
        assert header["MP_BAD"] == 0
        image = str(header)
    assert "HIERARCH MP_DETECTED_NEGATIVE = 6" in image


def test_observation_photocalib_and_psf_round_trip(tmp_path):
    exposure = make_exposure()
    back = _round_trip(exposure, tmp_path, compress=True)
    assert back.observation == exposure.observation
    assert back.photo_calib.calibration == pytest.approx(0.0625, rel=1e-15)
    assert back.photo_calib.calibration_error == pytest.approx(0.00125)
    assert back.photo_calib.njy_per_electron == pytest.approx(1.5)
    assert back.psf is not None
    assert back.psf.fwhm == pytest.approx(3.7, rel=1e-15)


def test_visit_cards_are_afw_and_butler_style(tmp_path):
    path = tmp_path / "e.fits"
    write_dp1(make_exposure(), path)
    header = fits.getheader(path, 0)
    assert header["INSTRUMENT"] == "LSSTComCam"
    assert header["EXPTIME"] == 30.0
    assert header["BORE-AIRMASS"] == pytest.approx(1.0634)
    assert header["TIMESYS"] == "TAI"
    assert header["LSST BUTLER DATAID VISIT"] == 2024120200123
    assert header["LSST BUTLER DATAID DETECTOR"] == 4
    assert header["LSST BUTLER DATAID PHYSICAL_FILTER"] == "r_03"
    assert header["RECREATE PHOTOCALIB MEAN"] == pytest.approx(0.0625)
    assert header["RECREATE PSF FWHM"] == pytest.approx(3.7)


def test_coadd_observation_round_trip(tmp_path):
    exposure = make_exposure()
    exposure.observation = coadd_observation()
    back = _round_trip(exposure, tmp_path, compress=False)
    assert back.observation == coadd_observation()
    assert back.observation is not None
    assert back.observation.is_coadd
    header = fits.getheader(tmp_path / "exposure.fits", 0)
    assert header["LSST BUTLER DATAID TRACT"] == 5063
    assert header["LSST BUTLER DATAID PATCH"] == 14
    assert "LSST BUTLER DATAID VISIT" not in header


def test_psf_grid_round_trip(tmp_path):
    exposure = make_exposure()
    back = _round_trip(exposure, tmp_path, compress=True)
    assert back.psf is not None
    grid, want = back.psf.grid, exposure.psf.grid
    assert grid is not None
    assert want is not None
    np.testing.assert_array_equal(grid.xs, want.xs)
    np.testing.assert_array_equal(grid.ys, want.ys)
    assert grid.images.tobytes() == want.images.tobytes()
    np.testing.assert_array_equal(
        grid.image_at(40.0, 33.0), want.image_at(40.0, 33.0)
    )
    with fits.open(tmp_path / "exposure.fits") as hdulist:
        assert hdulist["PSF_GRID"].data.shape == (3, 4, 11, 11)
        assert hdulist["PSF_GRID"].header["GRIDX004"] == 95.0


def test_psf_without_grid_and_no_psf(tmp_path):
    exposure = make_exposure()
    exposure.psf = PsfInfo(fwhm=2.5)
    back = _round_trip(exposure, tmp_path, compress=False)
    assert back.psf is not None
    assert back.psf.grid is None
    assert back.psf.fwhm == 2.5
    exposure.psf = None
    second = tmp_path / "second"
    second.mkdir()
    assert _round_trip(exposure, second, compress=False).psf is None


def test_metadata_round_trip(tmp_path):
    exposure = make_exposure()
    back = _round_trip(exposure, tmp_path, compress=True)
    assert back.metadata == exposure.metadata


def test_metadata_unit_sets_plane_units(tmp_path):
    exposure = make_exposure()
    exposure.metadata = {"BUNIT": "adu"}
    back = _round_trip(exposure, tmp_path, compress=False)
    assert back.metadata == {"BUNIT": "adu"}
    with fits.open(tmp_path / "exposure.fits") as hdulist:
        assert hdulist["IMAGE"].header["BUNIT"] == "adu"
        assert hdulist["VARIANCE"].header["BUNIT"] == "adu**2"
        assert "BUNIT" not in hdulist[0].header


def test_extra_hdus_are_ignored(tmp_path):
    exposure = make_exposure()
    hdulist = dp1_hdulist(exposure, compress=True)
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="id", format="J", array=np.arange(3))],
        name="ARCHIVE_INDEX",
    )
    stray = fits.ImageHDU(np.ones((4, 4), np.float32), name="JUNK")
    # Archive tables *before* the planes too: planes are found by label.
    hdulist.insert(1, table)
    hdulist.append(stray)
    path = tmp_path / "extra.fits"
    hdulist.writeto(path)
    back = read_dp1(path)
    assert back.plane_hash() == exposure.plane_hash()
    assert back.psf is not None
    assert back.psf.grid is not None


def test_read_from_open_hdulist(tmp_path):
    exposure = make_exposure()
    path = tmp_path / "e.fits"
    write_dp1(exposure, path)
    with fits.open(path) as hdulist:
        back = read_dp1(hdulist)
    assert back.plane_hash() == exposure.plane_hash()
    assert back.xy0 == exposure.xy0


def test_mask_without_plane_cards_gets_afw_defaults(tmp_path):
    hdulist = dp1_hdulist(make_exposure(), compress=False)
    for key in [k for k in hdulist["MASK"].header if k.startswith("MP_")]:
        del hdulist["MASK"].header[key]
    path = tmp_path / "nomp.fits"
    hdulist.writeto(path)
    assert read_dp1(path).mask_planes == MaskPlanes.afw_default()


def test_unlabelled_planes_are_taken_in_order(tmp_path):
    exposure = make_exposure()
    hdulist = dp1_hdulist(exposure, compress=False)
    for hdu in hdulist[1:]:
        for key in ("EXTNAME", "EXTTYPE"):
            del hdu.header[key]
    path = tmp_path / "unlabelled.fits"
    hdulist.writeto(path)
    back = read_dp1(path)
    assert back.plane_hash() == exposure.plane_hash()


def test_foreign_header_keeps_only_unmapped_butler_provenance(tmp_path):
    # A file another tool wrote (no RECREATE FORMAT VERSION card): only
    # the Butler provenance cards become metadata, not instrument noise.
    hdulist = dp1_hdulist(make_exposure(), compress=False)
    primary = hdulist[0].header
    del primary["RECREATE FORMAT VERSION"]
    primary["HUMIDITY"] = 12.5
    primary["HIERARCH LSST BUTLER DATAID EXPOSURE"] = 2024120200123
    primary["HIERARCH LSST BUTLER INPUT 0 ID"] = "a1b2"
    path = tmp_path / "foreign.fits"
    hdulist.writeto(path)
    back = read_dp1(path)
    assert back.metadata == {
        "LSST BUTLER RUN": "LSSTComCam/runs/DRP/DP1/w_2025_03",
        "LSST BUTLER DATAID EXPOSURE": 2024120200123,
        "LSST BUTLER INPUT 0 ID": "a1b2",
    }
    # The mapped data ID cards still fill the observation.
    assert back.observation == make_exposure().observation


def test_afw_fluxmag0_gives_the_calibration(tmp_path):
    hdulist = dp1_hdulist(make_exposure(), compress=False)
    primary = hdulist[0].header
    for key in [k for k in primary if k.startswith("RECREATE PHOTOCALIB")]:
        del primary[key]
    # A magnitude-0 source of 10**10 counts: zero point 25 for 1 count.
    primary["FLUXMAG0"] = 1e10
    primary["HIERARCH FLUXMAG0ERR"] = 1e8
    path = tmp_path / "fluxmag0.fits"
    hdulist.writeto(path)
    calib = read_dp1(path).photo_calib
    assert calib.zero_point == pytest.approx(25.0)
    assert calib.calibration_error == pytest.approx(0.01 * calib.calibration)
