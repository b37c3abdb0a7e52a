"""Hits stream from Redis; a chunk broken mid-stream; compressed FITS."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from astropy.io import fits

from recreate.client import Client
from tests.support.products import chunk_keys, manifest_keys
from tests.support.service import running_api
from tests.workers.conftest import service_settings

#: Small chunks: a ci product is then about thirty of them.
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def small_chunks_url(
    ci_repo, redis_cache_server, redis_control_server, thread_cluster
):
    settings = service_settings(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
        chunk_bytes=CHUNK,
    )
    with running_api(settings) as url:
        yield url


def _get(url, key, **params):
    return httpx.get(
        f"{url}/api/v1/diffims/{key[0]}/{key[1]}", params=params, timeout=120
    )


def _corrupt_chunk(cache_redis, index: int) -> None:
    """Flip a byte of one stored chunk of the cached DP1 product."""
    chunk = chunk_keys(cache_redis, "dp1")[index]
    stored = cache_redis.get(chunk)
    cache_redis.setrange(chunk, 7, bytes([stored[7] ^ 0xFF]))


def test_a_chunk_broken_mid_stream_cuts_the_body_and_is_recomputed(
    small_chunks_url, full_key, cache_redis, control_redis
):
    first = _get(small_chunks_url, full_key)
    assert first.status_code == 200
    _corrupt_chunk(cache_redis, 10)
    # The status and 10 good chunks are out before the bad one is read:
    # the body stops short of its Content-Length, never a short file.
    with pytest.raises(httpx.RemoteProtocolError):
        _get(small_chunks_url, full_key)
    again = _get(small_chunks_url, full_key)
    assert again.status_code == 200
    assert again.headers["x-cache"] == "miss"
    assert again.content == first.content
    # The Python client asks once more by itself.
    _corrupt_chunk(cache_redis, 3)
    with Client(small_chunks_url) as client:
        product = client.fetch(*full_key)
    assert product.cache == "miss"
    assert product.data == first.content


def _bits(array: np.ndarray) -> np.ndarray:
    """Return an array's bytes in native order (NaN payloads kept)."""
    if not array.dtype.isnative:
        array = array.byteswap().view(array.dtype.newbyteorder())
    return array.view(np.uint8)


def test_compressed_fits_is_its_own_product_with_the_same_pixels(
    small_chunks_url, full_key, cache_redis, control_redis
):
    plain = _get(small_chunks_url, full_key)
    packed = _get(small_chunks_url, full_key, format="dp1-compressed")
    assert packed.status_code == 200, packed.text
    assert packed.headers["x-recreate-format"] == "dp1-compressed"
    assert packed.headers["content-type"] == "application/fits"
    assert packed.headers["etag"] != plain.headers["etag"]
    assert len(packed.content) < len(plain.content)
    assert (
        packed.headers["x-recreate-planes-sha256"]
        == plain.headers["x-recreate-planes-sha256"]
    )
    with (
        fits.open(io.BytesIO(plain.content)) as want,
        fits.open(io.BytesIO(packed.content)) as got,
    ):
        for plane in ("IMAGE", "MASK", "VARIANCE"):
            assert isinstance(got[plane], fits.CompImageHDU)
            assert np.array_equal(
                _bits(got[plane].data), _bits(want[plane].data)
            )
    assert (
        _get(small_chunks_url, full_key, format="dp1-compressed").headers[
            "x-cache"
        ]
        == "hit"
    )
    assert len(manifest_keys(cache_redis, "dp1", "dp1-compressed")) == 2


def test_a_client_gone_mid_stream_leaves_the_service_serving(
    small_chunks_url, full_key, cache_redis, control_redis
):
    whole = _get(small_chunks_url, full_key).content
    url = f"{small_chunks_url}/api/v1/diffims/{full_key[0]}/{full_key[1]}"
    for _ in range(3):
        with httpx.stream("GET", url, timeout=60) as response:
            assert response.headers["x-cache"] == "hit"
            next(response.iter_raw(CHUNK))
        # Closed after one chunk of about thirty.
    again = _get(small_chunks_url, full_key)
    assert again.headers["x-cache"] == "hit"
    assert again.content == whole
