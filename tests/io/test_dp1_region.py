"""Reading a box of a DP1-layout file: read_dp1_region, read_dp1_geometry.

A region read must give exactly the slice of a whole read: the same
pixel bytes, the parent origin of the box, a WCS that puts every pixel
where the whole image's does, and the same everything else.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits.hdu.compressed import section as compressed_section

from recreate.exposure import Exposure
from recreate.io import (
    PixelBox,
    afwplanes,
    read_dp1,
    read_dp1_geometry,
    read_dp1_region,
)
from recreate.io.dp1 import dp1_hdulist
from recreate.visit_geometry import image_plane_geometry
from tests.support.exposures import make_exposure

#: Tiles of 16 rows by 24 columns: a box touches only some of a row's.
SMALL_TILES = (16, 24)

#: make_exposure's origin and shape.
X0, Y0 = 1234, -56
HEIGHT, WIDTH = 80, 100

BOXES = {
    "inside": PixelBox(X0 + 17, Y0 + 9, 40, 30),
    "over the low corner": PixelBox(X0 - 10, Y0 - 5, 30, 20),
    "over the high corner": PixelBox(X0 + 90, Y0 + 70, 50, 50),
    "one pixel": PixelBox(X0 + WIDTH - 1, Y0 + HEIGHT - 1, 1, 1),
    "all and more": PixelBox(X0 - 100, Y0 - 100, 400, 400),
}


def _hdulist(exposure: Exposure, layout: str) -> fits.HDUList:
    """Return the exposure's HDU list in one of the layouts read here."""
    if layout == "plain":
        return dp1_hdulist(exposure, compress=False)
    hdulist = dp1_hdulist(exposure, compress=True)
    if layout == "small tiles":
        for index in (1, 2, 3):
            hdu = hdulist[index]
            hdulist[index] = fits.CompImageHDU(
                data=hdu.data,
                header=hdu.header,
                name=hdu.name,
                compression_type="GZIP_2",
                quantize_level=0.0,
                tile_shape=SMALL_TILES,
            )
    return hdulist


def _write(exposure: Exposure, layout: str, tmp_path) -> str:
    path = tmp_path / f"{layout.replace(' ', '_')}.fits"
    _hdulist(exposure, layout).writeto(path)
    return str(path)


def _expected_window(box: PixelBox, whole: Exposure) -> tuple[slice, slice]:
    """Return the rows and columns of ``whole`` inside ``box``."""
    (x0, y0), (height, width) = whole.xy0, whole.shape
    columns = slice(
        min(max(box.x0 - x0, 0), width),
        min(max(box.x0 + box.width - x0, 0), width),
    )
    rows = slice(
        min(max(box.y0 - y0, 0), height),
        min(max(box.y0 + box.height - y0, 0), height),
    )
    return rows, columns


def _assert_slice_of(cut: Exposure, whole: Exposure, box: PixelBox) -> None:
    """Check that ``cut`` is the part of ``whole`` inside ``box``."""
    rows, columns = _expected_window(box, whole)
    # Bytes, not values: NaN payloads and -0.0 must come through too.
    for got, want in (
        (cut.image, whole.image),
        (cut.variance, whole.variance),
        (cut.mask, whole.mask),
    ):
        assert got.dtype == want.dtype
        assert (
            got.tobytes()
            == np.ascontiguousarray(want[rows, columns]).tobytes()
        )
    assert cut.xy0 == (whole.xy0[0] + columns.start, whole.xy0[1] + rows.start)
    assert cut.mask_planes == whole.mask_planes
    assert cut.photo_calib == whole.photo_calib
    assert cut.observation == whole.observation
    assert cut.metadata == whole.metadata
    _assert_same_sky(cut, whole, columns.start, rows.start)
    _assert_same_psf(cut, whole, columns.start, rows.start)


def _assert_same_sky(cut: Exposure, whole: Exposure, dx: int, dy: int) -> None:
    """Check that cut pixel (x, y) is whole pixel (x + dx, y + dy)."""
    height, width = cut.shape
    xs = np.array([0.0, width - 1.0, 0.5 * width, -0.5, width + 300.0])
    ys = np.array([0.0, height - 1.0, 0.5 * height, -0.5, -2000.0])
    ra, dec = cut.require_wcs().pixel_to_world_values(xs, ys)
    want_ra, want_dec = whole.require_wcs().pixel_to_world_values(
        xs + dx, ys + dy
    )
    # 1e-11 deg is 40 micro-arcsec: rounding, not a shifted pixel.
    np.testing.assert_allclose(ra, want_ra, rtol=0, atol=1e-11)
    np.testing.assert_allclose(dec, want_dec, rtol=0, atol=1e-11)
    # The SIP reference pixel moved with the WCS's, or the distortion
    # would be evaluated about another point.
    sip, whole_sip = cut.require_wcs().sip, whole.require_wcs().sip
    assert sip is not None
    assert whole_sip is not None
    np.testing.assert_array_equal(sip.crpix, whole_sip.crpix - [dx, dy])


def _assert_same_psf(cut: Exposure, whole: Exposure, dx: int, dy: int) -> None:
    """Check the PSF: same FWHM, grid nodes in the cut-out's pixels."""
    assert cut.psf is not None
    assert whole.psf is not None
    assert cut.psf.fwhm == whole.psf.fwhm
    grid, whole_grid = cut.psf.grid, whole.psf.grid
    assert grid is not None
    assert whole_grid is not None
    assert grid.images.tobytes() == whole_grid.images.tobytes()
    np.testing.assert_array_equal(grid.xs, whole_grid.xs - dx)
    np.testing.assert_array_equal(grid.ys, whole_grid.ys - dy)
    np.testing.assert_array_equal(
        grid.image_at(40.0 - dx, 33.0 - dy), whole_grid.image_at(40.0, 33.0)
    )


@pytest.mark.parametrize("layout", ["row tiles", "small tiles", "plain"])
@pytest.mark.parametrize("where", list(BOXES))
def test_region_is_the_slice_of_the_whole_read(tmp_path, layout, where):
    path = _write(make_exposure(), layout, tmp_path)
    whole = read_dp1(path)
    box = BOXES[where]
    _assert_slice_of(read_dp1_region(path, box), whole, box)


@pytest.mark.parametrize("layout", ["row tiles", "small tiles", "plain"])
def test_region_of_an_open_or_in_memory_file(tmp_path, layout):
    exposure = make_exposure()
    box = BOXES["inside"]
    path = _write(exposure, layout, tmp_path)
    whole = read_dp1(path)
    in_memory = _hdulist(exposure, layout)
    _assert_slice_of(read_dp1_region(in_memory, box), whole, box)
    with fits.open(path) as hdulist:
        _assert_slice_of(read_dp1_region(hdulist, box), whole, box)


@pytest.mark.parametrize("layout", ["row tiles", "plain"])
def test_a_box_that_misses_reads_no_pixel(tmp_path, layout, monkeypatch):
    path = _write(make_exposure(), layout, tmp_path)

    def refuse(*_args, **_kwargs):
        raise AssertionError("a plane was read")

    # Every plane read goes through afwplanes' read_array.
    monkeypatch.setattr(afwplanes, "read_array", refuse)
    cut = read_dp1_region(path, PixelBox(X0 + WIDTH, Y0, 10, 10))
    assert cut.shape == (10, 0)
    assert cut.image.size == cut.mask.size == cut.variance.size == 0
    assert cut.xy0 == (X0 + WIDTH, Y0)
    assert cut.wcs is not None


def test_only_the_tiles_the_box_touches_are_decompressed(
    tmp_path, monkeypatch
):
    path = _write(make_exposure(), "small tiles", tmp_path)
    touched: list[tuple[list[int], list[int]]] = []
    decompress = compressed_section.decompress_image_data_section

    def spy(*args):
        touched.append((list(args[5]), list(args[6])))
        return decompress(*args)

    monkeypatch.setattr(
        compressed_section, "decompress_image_data_section", spy
    )
    box = PixelBox(X0 + 30, Y0 + 20, 20, 10)  # columns 30-49, rows 20-29
    read_dp1_region(path, box)
    # Rows 20-29 lie in tile row 1 (16-31), columns 30-49 in tile
    # columns 1-2 (24-71): 2 of the 5 x 5 tiles, for each of 3 planes.
    assert touched == [([1, 1], [1, 2])] * 3


@pytest.mark.parametrize("layout", ["row tiles", "plain"])
def test_region_of_an_unsigned_legacy_mask(tmp_path, layout):
    # Old afw files store an int16 mask as unsigned 16-bit (BZERO 32768):
    # the section must apply the same scaling as a whole read.
    exposure = make_exposure()
    hdulist = _hdulist(exposure, layout)
    mask = (exposure.mask & 0x7FFF).astype(np.uint16)
    mask[30:40, 20:60] |= 0x8000
    header = hdulist["MASK"].header
    if layout == "plain":
        hdulist["MASK"] = fits.ImageHDU(mask, header, name="MASK")
    else:
        hdulist["MASK"] = fits.CompImageHDU(
            mask, header, name="MASK", compression_type="GZIP_2"
        )
    path = tmp_path / "legacy.fits"
    hdulist.writeto(path)
    whole = read_dp1(path)
    assert whole.mask[35, 30] & 0x8000
    box = PixelBox(X0 + 10, Y0 + 25, 30, 30)
    _assert_slice_of(read_dp1_region(path, box), whole, box)


@pytest.mark.parametrize("layout", ["row tiles", "plain"])
@pytest.mark.parametrize(
    "read", [read_dp1_geometry, image_plane_geometry], ids=["all", "IMAGE"]
)
def test_geometry_is_that_of_the_whole_read(tmp_path, layout, read):
    path = _write(make_exposure(), layout, tmp_path)
    whole = read_dp1(path)
    geometry = read(path)
    assert geometry.xy0 == whole.xy0
    assert geometry.shape == whole.shape
    assert geometry.wcs is not None
    assert geometry.wcs.to_header_string(
        relax=True
    ) == whole.require_wcs().to_header_string(relax=True)
    xs, ys = np.array([0.0, 50.5, 99.0]), np.array([0.0, 40.5, 79.0])
    assert np.array_equal(
        geometry.wcs.pixel_to_world_values(xs, ys),
        whole.require_wcs().pixel_to_world_values(xs, ys),
    )


def test_an_image_plane_geometry_is_none_where_no_plane_says_image(tmp_path):
    # Unlabelled planes (HDUs 1-3 by position): the whole read decides.
    path = _write(make_exposure(), "plain", tmp_path)
    with fits.open(path, mode="update") as hdulist:
        for hdu in hdulist[1:]:
            for key in ("EXTTYPE", "EXTNAME"):
                hdu.header.remove(key, ignore_missing=True)
    assert image_plane_geometry(path) is None
    assert read_dp1_geometry(path).shape == (HEIGHT, WIDTH)


def test_an_image_plane_geometry_of_real_afw_files(realdata):
    for path in sorted((realdata / "lsst_afw").glob("*.fits")):
        geometry, whole = (
            image_plane_geometry(str(path)),
            read_dp1_geometry(path),
        )
        assert geometry is not None, path
        assert (geometry.xy0, geometry.shape) == (whole.xy0, whole.shape)
        assert (geometry.wcs is None) == (whole.wcs is None)
        if whole.wcs is not None:
            assert geometry.wcs.to_header_string(
                relax=True
            ) == whole.wcs.to_header_string(relax=True)
