"""The fast reader of losslessly GZIP tile-compressed images."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from recreate.errors import FormatError
from recreate.io.fitsfile import open_fits, read_array
from recreate.io.tiles import tile_layout


def _write(path, data, **compression):
    fits.HDUList(
        [fits.PrimaryHDU(), fits.CompImageHDU(data=data, **compression)]
    ).writeto(path)
    return path


def _astropy_pixels(path, window=None):
    with fits.open(path) as hdulist:
        hdu = hdulist[1]
        return np.asarray(hdu.data if window is None else hdu.section[window])


SAMPLES = {
    "float32": np.random.default_rng(1)
    .normal(0.0, 30.0, (203, 157))
    .astype(np.float32),
    "int32": np.random.default_rng(2)
    .integers(0, 2**20, (203, 157))
    .astype(np.int32),
    "int16": np.random.default_rng(3)
    .integers(-300, 300, (203, 157))
    .astype(np.int16),
    "float64": np.random.default_rng(4).normal(size=(203, 157)),
}


@pytest.mark.parametrize("kind", ["GZIP_1", "GZIP_2"])
@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("tile_rows", [1, 4])
def test_pixels_match_astropy_bit_for_bit(tmp_path, kind, name, tile_rows):
    data = SAMPLES[name].copy()
    if data.dtype.kind == "f":
        data[5, 7], data[9, 2] = np.nan, np.inf
    path = _write(
        tmp_path / "c.fits",
        data,
        compression_type=kind,
        quantize_level=0.0,
        tile_shape=(tile_rows, data.shape[1]),
    )
    windows = [
        None,
        (slice(0, 203), slice(0, 157)),
        (slice(37, 38), slice(3, 150)),
        (slice(101, 203), slice(0, 10)),
    ]
    with open_fits(path) as hdulist:
        hdu = hdulist[1]
        assert tile_layout(hdu) is not None
        for window in windows:
            fast = read_array(hdu, "plane", "c.fits", window)
            expected = _astropy_pixels(path, window)
            assert fast.dtype == expected.dtype.newbyteorder("=")
            assert fast.dtype.isnative
            assert fast.tobytes() == expected.astype(fast.dtype).tobytes()
    assert np.array_equal(fast, data[101:203, 0:10], equal_nan=True)


@pytest.mark.parametrize(
    "compression",
    [
        # astropy's default: floats quantised (lossy), with scale columns
        {"compression_type": "GZIP_2"},
        {"compression_type": "RICE_1"},
        # tiles that are not whole rows
        {"compression_type": "GZIP_2", "tile_shape": (16, 16)},
    ],
)
def test_other_layouts_are_left_to_astropy(tmp_path, compression):
    data = SAMPLES["float32"]
    if compression["compression_type"] == "RICE_1":
        data = SAMPLES["int32"]
    path = _write(tmp_path / "c.fits", data, **compression)
    with open_fits(path) as hdulist:
        assert tile_layout(hdulist[1]) is None
        pixels = read_array(hdulist[1], "plane", "c.fits")
    assert (
        pixels.tobytes()
        == _astropy_pixels(path).astype(pixels.dtype).tobytes()
    )


def test_scaled_integers_are_left_to_astropy(tmp_path):
    data = np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000
    path = _write(tmp_path / "u.fits", data, compression_type="GZIP_2")
    with open_fits(path) as hdulist:
        assert tile_layout(hdulist[1]) is None
        assert np.array_equal(read_array(hdulist[1], "plane", "u"), data)


def test_a_damaged_tile_names_the_file(tmp_path):
    data = SAMPLES["float32"]
    path = _write(
        tmp_path / "c.fits",
        data,
        compression_type="GZIP_2",
        quantize_level=0.0,
    )
    raw = bytearray(path.read_bytes())
    # The heap sits after the descriptor table, near the end: spoil it.
    for i in range(len(raw) - 4000, len(raw) - 3000):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    with (
        open_fits(path) as hdulist,
        pytest.raises(FormatError, match=r"c\.fits"),
    ):
        read_array(hdulist[1], "IMAGE plane", "c.fits")


def test_the_layout_is_the_same_from_the_table_astropy_kept(
    tmp_path, monkeypatch
):
    # The table header astropy kept, and the one read again from the
    # file (an astropy that keeps none), give the same layout.
    from recreate.io import tiles

    path = tmp_path / "kept.fits"
    data = np.arange(37 * 23, dtype=np.int32).reshape(37, 23)
    _write(path, data, compression_type="GZIP_2", tile_shape=(1, 23))
    with open_fits(path) as hdulist:
        assert tiles._table_header(hdulist[1]) is not None
        kept = tile_layout(hdulist[1])
        monkeypatch.setattr(tiles, "_table_header", lambda _: None)
        read_again = tile_layout(hdulist[1])
    assert kept is not None
    assert kept == read_again
