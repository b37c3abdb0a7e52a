"""Malformed input to read_dp1 and refused output of write_dp1."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import PhotoCalib
from recreate.io import read_dp1, write_dp1
from recreate.io.dp1 import dp1_hdulist
from tests.support.exposures import make_exposure


def _good_hdulist() -> fits.HDUList:
    """Return the HDU list of a good file, to break before writing."""
    return dp1_hdulist(make_exposure(), compress=False)


def _write(hdulist: fits.HDUList, tmp_path, name="bad.fits"):
    path = tmp_path / name
    hdulist.writeto(path)
    return path


def test_nonexistent_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "missing.fits"
    with pytest.raises(FileNotFoundError, match=r"missing\.fits"):
        read_dp1(path)


def test_not_a_fits_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("this is not FITS\n" * 200)
    with pytest.raises(FormatError, match=r"notes\.fits.*not a readable FITS"):
        read_dp1(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "whole.fits"
    write_dp1(make_exposure(), path, compress=False)
    data = path.read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.fits"):
        read_dp1(cut)


@pytest.mark.parametrize("plane", ["MASK", "VARIANCE"])
def test_missing_plane_is_named(tmp_path, plane):
    hdulist = _good_hdulist()
    del hdulist[plane]
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match=rf"bad\.fits: no {plane} plane"):
        read_dp1(path)


def test_plane_that_is_not_an_image(tmp_path):
    hdulist = _good_hdulist()
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="E", array=np.zeros(3))]
    )
    table.header["EXTTYPE"] = "VARIANCE"
    hdulist[3] = table
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match="VARIANCE HDU is not a 2-D image"):
        read_dp1(path)


def test_bad_mask_plane_card(tmp_path):
    hdulist = _good_hdulist()
    hdulist["MASK"].header["MP_BAD"] = "zero"
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match=r"bad\.fits: MASK plane.*MP_BAD"):
        read_dp1(path)


def test_mask_card_out_of_range(tmp_path):
    hdulist = _good_hdulist()
    hdulist["MASK"].header["MP_CR"] = 40
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match="'CR' has bit 40"):
        read_dp1(path)


def test_float_mask_is_refused(tmp_path):
    hdulist = _good_hdulist()
    hdulist["MASK"].data = hdulist["MASK"].data.astype(np.float32)
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match="MASK plane has dtype float32"):
        read_dp1(path)


def test_planes_of_different_shapes(tmp_path):
    hdulist = _good_hdulist()
    hdulist["VARIANCE"].data = np.ones((10, 10), np.float32)
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match="planes differ in shape"):
        read_dp1(path)


def test_inconsistent_xy0_cards(tmp_path):
    hdulist = _good_hdulist()
    hdulist["IMAGE"].header["CRVAL1A"] = 7
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match="LTV1/LTV2 give xy0"):
        read_dp1(path)


def test_non_integer_ltv(tmp_path):
    hdulist = _good_hdulist()
    hdulist["IMAGE"].header["LTV1"] = 2.5
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match=r"LTV1=2\.5 is not an integer"):
        read_dp1(path)


def test_wrongly_typed_observation_card(tmp_path):
    hdulist = _good_hdulist()
    hdulist[0].header["HIERARCH LSST BUTLER DATAID VISIT"] = "yesterday"
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match="DATAID VISIT='yesterday'"):
        read_dp1(path)


def test_non_positive_calibration_card(tmp_path):
    hdulist = _good_hdulist()
    hdulist[0].header["HIERARCH RECREATE PHOTOCALIB MEAN"] = -1.0
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match=r"MEAN=-1\.0 is not a positive"):
        read_dp1(path)


def test_psf_grid_without_fwhm(tmp_path):
    hdulist = _good_hdulist()
    del hdulist[0].header["RECREATE PSF FWHM"]
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match="PSF_GRID extension without"):
        read_dp1(path)


def test_psf_grid_cards_disagree_with_cube(tmp_path):
    hdulist = _good_hdulist()
    del hdulist["PSF_GRID"].header["GRIDX004"]
    path = _write(hdulist, tmp_path)
    with pytest.raises(FormatError, match=r"bad\.fits: PSF grid images"):
        read_dp1(path)


def test_write_refuses_to_overwrite_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.fits"
    path.write_bytes(b"original")
    with pytest.raises(FileExistsError, match=r"keep\.fits"):
        write_dp1(make_exposure(), path)
    assert path.read_bytes() == b"original"
    write_dp1(make_exposure(), path, overwrite=True)
    assert read_dp1(path).shape == (80, 100)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "never.fits"

    def fail_half_way(_self, fileobj, **_):
        fileobj.write(b"SIMPLE  =" + b" " * 100)
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_dp1(make_exposure(), path)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "old.fits"
    write_dp1(make_exposure(seed=1), path)
    before = path.read_bytes()

    def fail(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", fail)
    with pytest.raises(OSError, match="disk full"):
        write_dp1(make_exposure(seed=2), path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["old.fits"]


def test_write_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        write_dp1(make_exposure(), tmp_path / "no_such_dir" / "x.fits")


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"EXPTIME": 3.0}, "'EXPTIME' clashes"),
        ({"NAXIS": 3}, "'NAXIS' clashes"),
        ({"WHEN": object()}, "metadata 'WHEN'=.* cannot be written"),
        ({"NAN": float("nan")}, "metadata 'NAN'=nan cannot be written"),
        ({"BUNIT": 3}, "metadata BUNIT=3 is not a unit"),
    ],
)
def test_write_refuses_bad_metadata(tmp_path, metadata, message):
    exposure = make_exposure()
    exposure.metadata = metadata
    with pytest.raises(FormatError, match=message):
        write_dp1(exposure, tmp_path / "m.fits")
    assert not (tmp_path / "m.fits").exists()


def test_write_refuses_non_finite_calibration(tmp_path):
    exposure = make_exposure()
    exposure.photo_calib = PhotoCalib(calibration=float("inf"))
    with pytest.raises(FormatError, match="MEAN=inf is not a positive"):
        write_dp1(exposure, tmp_path / "c.fits")
