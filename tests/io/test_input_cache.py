"""The input cache: the same pixels as a direct read, bounded, thread-safe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from astropy.io import fits

from recreate.io.fitsfile import open_fits
from recreate.io.input_cache import BAND_ROWS, InputCache
from recreate.io.tiles import TileLayout, read_tiles, tile_layout

HEIGHT, WIDTH = 1100, 37


def _compressed(tmp_path, kind: str = "GZIP_2", tile_rows: int = 1):
    """Write a float32 plane tile-compressed; return its layout and pixels."""
    rng = np.random.default_rng(3)
    data = rng.normal(size=(HEIGHT, WIDTH)).astype(np.float32)
    data[17, 5] = np.nan
    path = tmp_path / f"{kind}-{tile_rows}.fits"
    hdu = fits.CompImageHDU(
        data,
        compression_type=kind,
        quantize_level=0.0,
        tile_shape=(tile_rows, WIDTH),
    )
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    with open_fits(path) as hdulist:
        layout = tile_layout(hdulist[1])
    assert layout is not None
    return layout, data


def _windows() -> list[slice]:
    rng = np.random.default_rng(8)
    starts = rng.integers(0, HEIGHT - 1, size=40)
    spans = rng.integers(1, 300, size=40)
    chosen = [
        slice(int(a), int(min(a + n, HEIGHT)))
        for a, n in zip(starts, spans, strict=True)
    ]
    return [slice(0, 1), slice(HEIGHT - 1, HEIGHT), slice(63, 65), *chosen]


@pytest.mark.parametrize(("kind", "tile_rows"), [("GZIP_2", 1), ("GZIP_1", 7)])
def test_cached_rows_are_the_direct_reads_bit_for_bit(
    tmp_path, kind, tile_rows
):
    layout, data = _compressed(tmp_path, kind, tile_rows)
    cache = InputCache(64 * 1024 * 1024)
    for _ in range(2):  # cold, then from the kept bands
        for rows in _windows():
            cached = cache.read_rows("plane", layout, rows)
            direct = read_tiles(layout, rows)
            assert cached.dtype == direct.dtype
            assert cached.tobytes() == direct.tobytes()
            assert cached.tobytes() == data[rows].tobytes()
    assert cache.stats().hits > 0


def test_a_read_returns_pixels_the_caller_may_change(tmp_path):
    layout, data = _compressed(tmp_path)
    cache = InputCache(64 * 1024 * 1024)
    first = cache.read_rows("plane", layout, slice(10, 20))
    first[...] = 0
    again = cache.read_rows("plane", layout, slice(10, 20))
    assert again.tobytes() == data[10:20].tobytes()


def test_the_byte_bound_holds_and_drops_the_least_recently_used(tmp_path):
    layout, _ = _compressed(tmp_path)
    band_bytes = BAND_ROWS * WIDTH * 4
    cache = InputCache(5 * band_bytes)
    for top in range(0, HEIGHT, BAND_ROWS):
        cache.read_rows("plane", layout, slice(top, top + 1))
        assert cache.stats().bytes <= 5 * band_bytes
    assert cache.stats().bands == 5
    misses = cache.stats().misses
    cache.read_rows("plane", layout, slice(0, 1))  # dropped long ago
    assert cache.stats().misses == misses + 1
    cache.resize(band_bytes)
    assert cache.stats().bytes <= band_bytes
    cache.resize(0)
    assert cache.stats().bytes == 0


def test_a_read_over_a_quarter_of_the_bound_is_not_kept(tmp_path):
    layout, data = _compressed(tmp_path)
    cache = InputCache(8 * BAND_ROWS * WIDTH * 4)
    whole = cache.read_rows("plane", layout, slice(0, HEIGHT))
    assert whole.tobytes() == data.tobytes()
    assert cache.stats().bands == 0


def test_planes_of_other_files_do_not_share_bands(tmp_path):
    one, data_one = _compressed(tmp_path, "GZIP_2", 1)
    other, _ = _compressed(tmp_path, "GZIP_1", 7)
    cache = InputCache(64 * 1024 * 1024)
    cache.read_rows(("b", 1), other, slice(0, 50))
    rows = cache.read_rows(("a", 1), one, slice(0, 50))
    assert rows.tobytes() == data_one[0:50].tobytes()


def test_concurrent_reads_give_the_direct_pixels(tmp_path):
    layout, data = _compressed(tmp_path)
    # Small enough that threads evict each other's bands.
    cache = InputCache(12 * BAND_ROWS * WIDTH * 4)
    windows = _windows() * 6

    def read(rows: slice) -> bool:
        return cache.read_rows("plane", layout, rows).tobytes() == (
            data[rows].tobytes()
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(read, windows))
    stats = cache.stats()
    assert stats.bytes <= stats.max_bytes
    assert 0 < stats.bytes <= stats.bands * BAND_ROWS * WIDTH * 4


def test_a_negative_bound_is_refused():
    with pytest.raises(ValueError, match="-1 bytes"):
        InputCache(-1)


def test_a_whole_plane_of_many_tiles_reads_on_threads_the_same(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("RECREATE_THREADS", "2")
    layout, data = _compressed(tmp_path)
    assert isinstance(layout, TileLayout)
    assert read_tiles(layout, slice(0, HEIGHT)).tobytes() == data.tobytes()


def test_dropped_planes_are_decoded_again_and_others_stay(tmp_path):
    one, data_one = _compressed(tmp_path, "GZIP_2", 1)
    other, _ = _compressed(tmp_path, "GZIP_1", 7)
    cache = InputCache(64 * 1024 * 1024)
    cache.read_rows(("a", 1), one, slice(0, 50))
    cache.read_rows(("b", 1), other, slice(0, 50))
    kept = cache.stats()
    cache.drop(lambda plane: plane[0] == "a")
    dropped = cache.stats()
    assert (kept.bands, dropped.bands) == (2, 1)
    assert 0 < dropped.bytes < kept.bytes
    cache.read_rows(("b", 1), other, slice(0, 50))
    assert cache.stats().hits == kept.hits + 1
    rows = cache.read_rows(("a", 1), one, slice(0, 50))
    assert cache.stats().misses == kept.misses + 1
    assert rows.tobytes() == data_one[0:50].tobytes()
