"""Boxes of a file whose headers are parsed once: read_dp1_region's bits."""

from __future__ import annotations

import os

import pytest

from recreate.io import read_dp1_region
from recreate.io.image_file import forget_image_file, open_image_file
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
