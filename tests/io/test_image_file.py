"""Boxes of a file whose headers are parsed once: read_dp1_region's bits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recreate.io import read_dp1, read_dp1_region
from recreate.io.dp1 import dp1_hdulist
from recreate.io.image_file import (
    _open_astropy,
    _open_tables,
    forget_image_file,
    open_image_file,
)
from recreate.io.input_cache import input_cache
from tests.io.test_dp1_region import BOXES, _write
from tests.support.exposures import make_exposure


@pytest.mark.parametrize("layout", ["plain", "whole rows", "small tiles"])
@pytest.mark.parametrize("name", list(BOXES))
def test_a_region_is_read_dp1_regions(tmp_path, layout, name):
    path = _write(make_exposure(), layout, tmp_path)
    box = BOXES[name]
    got = open_image_file(path).region(box)
    want = read_dp1_region(path, box)
    for plane in ("image", "variance", "mask"):
        assert getattr(got, plane).dtype == getattr(want, plane).dtype
        assert getattr(got, plane).tobytes() == getattr(want, plane).tobytes()
    assert got.xy0 == want.xy0
    assert got.mask_planes == want.mask_planes
    assert got.metadata == want.metadata
    assert got.observation == want.observation
    assert got.photo_calib == want.photo_calib
    assert got.psf.fwhm == want.psf.fwhm
    for field in ("xs", "ys", "images"):
        assert (
            getattr(got.psf.grid, field).tobytes()
            == getattr(want.psf.grid, field).tobytes()
        )
    if got.image.size:
        assert got.wcs.to_header(relax=True) == want.wcs.to_header(relax=True)


def test_a_changed_file_is_parsed_again(tmp_path):
    path = _write(make_exposure(), "plain", tmp_path)
    first = open_image_file(path)
    assert open_image_file(path) is first
    os.utime(path, ns=(1, 1))
    assert open_image_file(path) is not first


def test_a_forgotten_file_is_parsed_and_decoded_again(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "other").mkdir()
    path = _write(make_exposure(), "whole rows", tmp_path / "one")
    other = _write(make_exposure(), "whole rows", tmp_path / "other")
    box = BOXES[next(iter(BOXES))]
    first, kept = open_image_file(path), open_image_file(other)
    first.region(box)
    kept.region(box)
    before = input_cache.stats()
    forget_image_file(path)
    assert 0 < input_cache.stats().bands < before.bands
    assert open_image_file(path) is not first
    assert open_image_file(other) is kept
    again = open_image_file(path).region(box)
    assert again.image.tobytes() == first.region(box).image.tobytes()


def _version(path) -> tuple[str, int, int]:
    stat = Path(path).stat()
    return (str(path), stat.st_size, stat.st_mtime_ns)


def _assert_same_parse(fast, slow) -> None:
    assert fast.geometry.xy0 == slow.geometry.xy0
    assert fast.geometry.shape == slow.geometry.shape
    if slow.geometry.wcs is None:
        assert fast.geometry.wcs is None
    else:
        assert fast.geometry.wcs.wcs.compare(slow.geometry.wcs.wcs)
        assert fast.geometry.wcs.pixel_shape == slow.geometry.wcs.pixel_shape
        assert fast.geometry.wcs.to_header_string(
            relax=True
        ) == slow.geometry.wcs.to_header_string(relax=True)
    for field in ("mask_planes", "photo_calib", "observation", "metadata"):
        assert getattr(fast.shell, field) == getattr(slow.shell, field), field
    assert (fast.shell.psf is None) == (slow.shell.psf is None)
    if slow.shell.psf is not None:
        assert fast.shell.psf.fwhm == slow.shell.psf.fwhm
        for field in ("xs", "ys", "images"):
            assert (
                getattr(fast.shell.psf.grid, field).tobytes()
                == getattr(slow.shell.psf.grid, field).tobytes()
            )
    assert fast.planes.keys() == slow.planes.keys()
    for label, source in fast.planes.items():
        assert source.tiles == slow.planes[label].tiles, label


def test_the_tables_parse_is_astropys_on_ci_files_compressed(
    ci_repo, tmp_path
):
    # Visit images and template patches of the CI repository (written
    # uncompressed there), written with DP1's row-tiled GZIP_2 planes:
    # read as tables, they parse to what astropy's image HDUs give.
    paths = sorted(ci_repo.root.rglob("visit_image*.fits"))[:3]
    paths += sorted(ci_repo.root.rglob("template_coadd*.fits"))[:2]
    assert len(paths) == 5
    for index, path in enumerate(paths):
        copy = tmp_path / f"{index}.fits"
        dp1_hdulist(read_dp1(path), compress=True).writeto(copy)
        version = _version(copy)
        fast = _open_tables(version)
        assert fast is not None, path
        _assert_same_parse(fast, _open_astropy(version))


def test_other_layouts_are_parsed_by_astropy(tmp_path):
    # Tiles of 16x24 px, and uncompressed planes: not the tables' parse.
    for layout in ("small tiles", "plain"):
        path = _write(make_exposure(), layout, tmp_path)
        assert _open_tables(_version(path)) is None
        assert open_image_file(path).region(BOXES["inside"]).image.size
