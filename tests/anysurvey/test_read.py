"""Reading any-survey inputs: every plane a file has, PSF images, cards."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from recreate.anysurvey.read import PlaneSources, read_science, reading_notes
from recreate.exposure import Exposure, MaskPlanes, PsfInfo
from recreate.io import write_dp1
from tests.support.exposures import tan_sip_wcs
from tests.support.pairs import gaussian_psf

SHAPE = (60, 70)


def _rubin_file(tmp_path):
    """Write a Rubin-layout science file whose column 17 is BAD."""
    rng = np.random.default_rng(3)
    planes = MaskPlanes.afw_default()
    mask = np.zeros(SHAPE, dtype=np.int32)
    mask[:, 17] = planes.value("BAD")
    exposure = Exposure(
        image=rng.normal(0.0, 5.0, SHAPE).astype(np.float32),
        variance=np.full(SHAPE, 25.0, dtype=np.float32),
        mask=mask,
        mask_planes=planes,
        wcs=tan_sip_wcs(crpix=(35.0, 30.0)),
        psf=PsfInfo(fwhm=3.3),
    )
    path = tmp_path / "rubin.fits"
    write_dp1(exposure, path)
    return path, exposure


def test_gain_keeps_every_plane_of_a_rubin_file(tmp_path):
    # The old reader switched to the plain one and lost the BAD column.
    path, written = _rubin_file(tmp_path)
    read = read_science(path, PlaneSources(gain=2.0))
    np.testing.assert_array_equal(read.mask, written.mask)
    np.testing.assert_array_equal(read.variance, written.variance)
    assert read.psf is not None
    assert read.psf.fwhm == 3.3
    assert read.wcs is not None
    assert reading_notes(read) == [
        "gain 2 not used: the file has a variance plane"
    ]


def test_a_given_variance_replaces_only_the_variance(tmp_path):
    path, _ = _rubin_file(tmp_path)
    variance = tmp_path / "variance.fits"
    values = np.full(SHAPE, 30.0, dtype=np.float32)
    values[2, 3] = 0.0  # unusable: no data there
    fits.PrimaryHDU(values).writeto(variance)
    read = read_science(path, PlaneSources(variance=str(variance)))
    planes = read.mask_planes
    assert (read.mask[:, 17] & planes.value("BAD")).all()
    assert read.mask[2, 3] & planes.value("NO_DATA")
    assert read.variance[5, 5] == 30.0
    assert read.variance[2, 3] == np.inf
    assert "variance from variance file variance.fits" in reading_notes(read)


def test_plain_file_extensions_and_cards(tmp_path):
    wcs = tan_sip_wcs(crpix=(35.0, 30.0), sip=False)
    header = wcs.to_header()
    header["SATURATE"] = 1000.0
    header["LTV1"] = -17.7
    image = np.random.default_rng(1).normal(0.0, 5.0, SHAPE)
    image[10, 10] = 2000.0
    mask = np.zeros(SHAPE, dtype=np.int16)
    mask[:, 5] = 4
    path = tmp_path / "plain.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(image.astype(np.float32), header),
            fits.ImageHDU(np.full(SHAPE, 25.0, np.float32), name="VARIANCE"),
            fits.ImageHDU(mask, name="MASK"),
            fits.ImageHDU(gaussian_psf(1.5), name="PSF"),
        ]
    ).writeto(path)
    read = read_science(path, PlaneSources())
    planes = read.mask_planes
    # The MASK extension is used (another survey's bits become BAD).
    assert (read.mask[:, 5] & planes.value("BAD")).all()
    assert read.mask[10, 10] & planes.value("SAT")
    assert (read.variance == 25.0).all()
    assert read.xy0 == (18, 0)
    assert read.psf is not None
    assert read.psf.grid is not None
    assert read.psf.fwhm == pytest.approx(1.5 * 2.3548, rel=0.03)
    notes = " ".join(reading_notes(read))
    assert "SATURATE = 1000" in notes
    assert "LTV1=-17.7" in notes
    assert "PSF from PSF image" in notes
