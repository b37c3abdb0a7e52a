"""Tests of cache.codec: chunking, compression choice, checksums."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from cache.codec import FORMAT_VERSION, Manifest, decode, encode
from cache.errors import CorruptValueError

CHUNK = 64 * 1024


def test_round_trip_mixed_data() -> None:
    data = os.urandom(3 * CHUNK + 123) + bytes(2 * CHUNK)
    encoded = encode(data, chunk_bytes=CHUNK, meta={"kind": "diffim"})
    assert decode(encoded.manifest, encoded.chunks) == data
    assert encoded.manifest.size == len(data)
    assert encoded.manifest.meta == {"kind": "diffim"}
    lengths = [c.raw_length for c in encoded.manifest.chunks]
    assert lengths == [CHUNK] * 5 + [123]


def test_last_chunk_is_shorter() -> None:
    data = os.urandom(2 * CHUNK + 10)
    encoded = encode(data, chunk_bytes=CHUNK)
    lengths = [c.raw_length for c in encoded.manifest.chunks]
    assert lengths == [CHUNK, CHUNK, 10]
    assert decode(encoded.manifest, encoded.chunks) == data


def test_empty_data() -> None:
    encoded = encode(b"")
    assert encoded.chunks == []
    assert encoded.manifest.size == 0
    assert decode(encoded.manifest, encoded.chunks) == b""
    parsed = Manifest.from_json(encoded.manifest.to_json())
    assert decode(parsed, []) == b""


def test_exact_chunk_boundary_makes_no_empty_chunk() -> None:
    data = os.urandom(3 * CHUNK)
    encoded = encode(data, chunk_bytes=CHUNK)
    assert [c.raw_length for c in encoded.manifest.chunks] == [CHUNK] * 3
    assert decode(encoded.manifest, encoded.chunks) == data


def test_random_data_is_stored_raw_and_zeros_compressed() -> None:
    data = os.urandom(2 * CHUNK) + bytes(2 * CHUNK)
    encoded = encode(data, chunk_bytes=CHUNK)
    codecs = [c.codec for c in encoded.manifest.chunks]
    assert codecs == ["raw", "raw", "zstd", "zstd"]
    assert encoded.chunks[0] == data[:CHUNK]
    assert len(encoded.chunks[2]) < CHUNK // 100
    for info, stored in zip(
        encoded.manifest.chunks, encoded.chunks, strict=True
    ):
        assert info.stored_length == len(stored)


def test_encode_is_deterministic() -> None:
    data = bytes(range(256)) * 3000 + os.urandom(CHUNK)
    first = encode(data, chunk_bytes=CHUNK, meta={"b": 1, "a": 2})
    second = encode(data, chunk_bytes=CHUNK, meta={"a": 2, "b": 1})
    assert first.chunks == second.chunks
    assert first.manifest.to_json() == second.manifest.to_json()


def test_flipped_byte_names_the_chunk() -> None:
    data = os.urandom(2 * CHUNK) + bytes(2 * CHUNK)
    encoded = encode(data, chunk_bytes=CHUNK)
    for index in (1, 3):
        chunks = list(encoded.chunks)
        damaged = bytearray(chunks[index])
        damaged[len(damaged) // 2] ^= 0x01
        chunks[index] = bytes(damaged)
        with pytest.raises(CorruptValueError, match=f"chunk {index} "):
            decode(encoded.manifest, chunks)


def test_truncated_or_missing_chunk_is_detected() -> None:
    encoded = encode(os.urandom(2 * CHUNK), chunk_bytes=CHUNK)
    with pytest.raises(CorruptValueError, match="chunk 1 "):
        decode(encoded.manifest, [encoded.chunks[0], encoded.chunks[1][:-1]])
    with pytest.raises(CorruptValueError, match="2 chunks"):
        decode(encoded.manifest, encoded.chunks[:1])


def test_wrong_whole_checksum_is_detected() -> None:
    encoded = encode(os.urandom(CHUNK), chunk_bytes=CHUNK)
    wrong = dataclasses.replace(encoded.manifest, sha256="0" * 64)
    with pytest.raises(CorruptValueError, match="SHA-256"):
        decode(wrong, encoded.chunks)


def test_manifest_json_round_trip() -> None:
    encoded = encode(
        os.urandom(CHUNK + 5), chunk_bytes=CHUNK, meta={"x": [1, "y"]}
    )
    manifest = dataclasses.replace(encoded.manifest, token="ab12")  # noqa: S106
    parsed = Manifest.from_json(manifest.to_json())
    assert parsed == manifest
    assert parsed.version == FORMAT_VERSION


def _document() -> dict[str, object]:
    manifest = encode(os.urandom(CHUNK + 5), chunk_bytes=CHUNK).manifest
    return json.loads(manifest.to_json())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": FORMAT_VERSION + 1}, "version"),
        ({"version": True}, "version"),
        ({"size": -1}, "size"),
        ({"sha256": "xyz"}, "sha256"),
        ({"nchunks": 7}, "nchunks"),
        ({"chunks": "nope"}, "chunks"),
        ({"nchunks": 1, "chunks": [["lz4", 5, 5, "0" * 32]]}, "codec"),
        ({"nchunks": 1, "chunks": [["raw", 5, 5, "0" * 31]]}, "checksum"),
        ({"nchunks": 1, "chunks": [["raw", -5, 5, "0" * 32]]}, "lengths"),
        ({"nchunks": 1, "chunks": [["raw", 5, 5]]}, "chunk 0"),
        ({"meta": []}, "meta"),
        ({"token": 5}, "token"),
    ],
)
def test_malformed_manifest_is_rejected(
    change: dict[str, object], message: str
) -> None:
    document = _document() | change
    with pytest.raises(CorruptValueError, match=message):
        Manifest.from_json(json.dumps(document).encode())


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[1, 2]", b"\xff\xfe", b'{"version": 1}']
)
def test_unparseable_manifest_is_rejected(raw: bytes) -> None:
    with pytest.raises(CorruptValueError):
        Manifest.from_json(raw)


def test_truncated_manifest_is_rejected() -> None:
    raw = encode(os.urandom(CHUNK)).manifest.to_json()
    with pytest.raises(CorruptValueError, match="not JSON"):
        Manifest.from_json(raw[:-3])


def test_chunk_lengths_must_add_up() -> None:
    document = _document()
    document["size"] = 1
    with pytest.raises(CorruptValueError, match="add up"):
        Manifest.from_json(json.dumps(document).encode())


def test_meta_must_be_json() -> None:
    with pytest.raises(TypeError):
        encode(b"abc", meta={"bad": object()})
    with pytest.raises(ValueError, match="Out of range"):
        encode(b"abc", meta={"bad": float("nan")})


def test_chunk_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_bytes"):
        encode(b"abc", chunk_bytes=0)
