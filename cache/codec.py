"""Value codec: split a blob into checksummed, optionally compressed chunks.

A cached difference image is a FITS file of 60-200 MB. Its image plane is
noise and barely compresses; its mask and variance planes compress 50 to
180 times. The codec therefore compresses each chunk with zstd and keeps
the compressed form only where it pays, so the noisy part costs one fast
compression attempt and is then stored raw.

Every stored chunk carries a BLAKE2b checksum and the whole value its
SHA-256, both in a JSON :class:`Manifest`, so a corrupt value is always
detected and never served. Encoding is deterministic: the same input gives
the same chunks and the same manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import zstandard

from cache.errors import CorruptValueError

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "FORMAT_VERSION",
    "ChunkInfo",
    "EncodedValue",
    "Manifest",
    "decode",
    "decode_chunk",
    "encode",
]

#: Version of the manifest layout; a reader rejects any other.
FORMAT_VERSION = 1

#: Chunk size: big enough for fast transfers, small enough that one
#: command never stalls Redis for long (a 65 MB GET held other clients'
#: PINGs for 85 ms).
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024

#: zstd compression level: 1 is fast and gains as much as higher levels
#: on image data.
_ZSTD_LEVEL = 1

#: Keep a compressed chunk only when it saves at least 5 %: decompressing
#: a barely-compressed chunk costs more than the bytes it saves.
_PAYS_BELOW = 0.95

#: Digest size of the per-chunk BLAKE2b checksum, in bytes.
_CHECKSUM_BYTES = 16

_HEX_RE = re.compile(r"[0-9a-f]+")

Codec = Literal["zstd", "raw"]


@dataclass(frozen=True)
class ChunkInfo:
    """How one chunk is stored.

    Attributes
    ----------
    codec
        ``"zstd"`` (compressed) or ``"raw"``.
    raw_length
        Length of the chunk once decoded.
    stored_length
        Length of the stored bytes.
    checksum
        BLAKE2b (128-bit) hex digest of the stored bytes.
    """

    codec: Codec
    raw_length: int
    stored_length: int
    checksum: str


@dataclass(frozen=True)
class Manifest:
    """Everything needed to reassemble and verify a chunked value.

    Attributes
    ----------
    size
        Length of the whole value in bytes.
    sha256
        SHA-256 hex digest of the whole value.
    chunks
        One entry per stored chunk, in order.
    meta
        Free JSON-able metadata (content type, timings, provenance).
    token
        Random id of the write that stored the chunks (set by the store;
        ``None`` for a value that was only encoded).
    version
        Manifest layout version.
    """

    size: int
    sha256: str
    chunks: tuple[ChunkInfo, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    token: str | None = None
    version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        """Serialise the manifest as compact, key-sorted JSON.

        Returns
        -------
        bytes
            UTF-8 JSON; equal manifests give equal bytes.

        Raises
        ------
        TypeError
            If ``meta`` holds something JSON cannot represent.
        ValueError
            If ``meta`` holds a NaN or an infinity.
        """
        document = {
            "version": self.version,
            "size": self.size,
            "sha256": self.sha256,
            "token": self.token,
            "nchunks": len(self.chunks),
            "chunks": [
                [c.codec, c.raw_length, c.stored_length, c.checksum]
                for c in self.chunks
            ],
            "meta": self.meta,
        }
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        """Parse and validate a manifest written by :meth:`to_json`.

        Parameters
        ----------
        raw
            The stored JSON.

        Returns
        -------
        Manifest
            The parsed manifest.

        Raises
        ------
        CorruptValueError
            If the JSON is malformed, of another version, or inconsistent.
        """
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptValueError(f"manifest is not JSON: {exc}") from exc
        return _manifest_from_document(document)


@dataclass(frozen=True)
class EncodedValue:
    """An encoded value: its manifest and the chunks to store, in order."""

    manifest: Manifest
    chunks: list[bytes]


def encode(
    data: bytes,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    meta: Mapping[str, Any] | None = None,
) -> EncodedValue:
    """Split ``data`` into chunks, compressing those where it pays.

    Parameters
    ----------
    data
        The value to encode.
    chunk_bytes
        Raw length of each chunk (the last one may be shorter).
    meta
        JSON-able metadata to record in the manifest.

    Returns
    -------
    EncodedValue
        The manifest and the chunks to store. Empty ``data`` gives no
        chunks.

    Raises
    ------
    ValueError
        If ``chunk_bytes`` is not positive.
    TypeError
        If ``meta`` is not JSON-able.
    """
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, not {chunk_bytes}")
    # One thread and no frame checksum: our own checksums cover the stored
    # bytes, and a single-threaded zstd gives the same bytes every time.
    compressor = zstandard.ZstdCompressor(
        level=_ZSTD_LEVEL, write_checksum=False, write_content_size=True
    )
    view = memoryview(data)
    infos: list[ChunkInfo] = []
    chunks: list[bytes] = []
    for start in range(0, len(data), chunk_bytes):
        piece = view[start : start + chunk_bytes]
        codec, stored = _encode_chunk(compressor, piece)
        infos.append(
            ChunkInfo(codec, len(piece), len(stored), _checksum(stored))
        )
        chunks.append(stored)
    manifest = Manifest(
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        chunks=tuple(infos),
        meta=dict(meta or {}),
    )
    # Fail now, not at the store's commit, on metadata JSON cannot hold.
    manifest.to_json()
    return EncodedValue(manifest=manifest, chunks=chunks)


def decode(manifest: Manifest, chunks: Sequence[bytes]) -> bytes:
    """Verify and reassemble a value from its manifest and stored chunks.

    Parameters
    ----------
    manifest
        The value's manifest.
    chunks
        The stored chunks, in order.

    Returns
    -------
    bytes
        The original value.

    Raises
    ------
    CorruptValueError
        If a chunk is missing, fails its checksum, does not decompress to
        its recorded length, or the whole value fails its SHA-256; the
        message names the chunk index.
    """
    if len(chunks) != len(manifest.chunks):
        raise CorruptValueError(
            f"manifest lists {len(manifest.chunks)} chunks, got {len(chunks)}"
        )
    decompressor = zstandard.ZstdDecompressor()
    pieces = [
        _decode_chunk(decompressor, index, info, stored)
        for index, (info, stored) in enumerate(
            zip(manifest.chunks, chunks, strict=True)
        )
    ]
    data = b"".join(pieces)
    if len(data) != manifest.size:
        raise CorruptValueError(
            f"value is {len(data)} bytes, manifest says {manifest.size}"
        )
    if hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise CorruptValueError("value fails its SHA-256 checksum")
    return data


def decode_chunk(index: int, info: ChunkInfo, stored: bytes | None) -> bytes:
    """Verify one stored chunk and return its raw bytes.

    For a value read chunk by chunk (streamed): each chunk is checked
    against its length and checksum before it is used.

    Parameters
    ----------
    index
        The chunk's position (named in errors).
    info
        Its entry in the manifest.
    stored
        The stored bytes, or None when the chunk is missing.

    Raises
    ------
    CorruptValueError
        If the chunk is missing, fails its checksum, or does not decode
        to its recorded length.
    """
    if stored is None:
        raise CorruptValueError(f"chunk {index} is missing")
    return _decode_chunk(zstandard.ZstdDecompressor(), index, info, stored)


def _encode_chunk(
    compressor: zstandard.ZstdCompressor, piece: memoryview
) -> tuple[Codec, bytes]:
    """Return the codec and stored bytes of one chunk."""
    compressed = compressor.compress(piece)
    if len(compressed) < _PAYS_BELOW * len(piece):
        return "zstd", compressed
    return "raw", bytes(piece)


def _decode_chunk(
    decompressor: zstandard.ZstdDecompressor,
    index: int,
    info: ChunkInfo,
    stored: bytes,
) -> bytes:
    """Verify one stored chunk and return its raw bytes."""
    if len(stored) != info.stored_length:
        raise CorruptValueError(
            f"chunk {index} is {len(stored)} bytes, "
            f"manifest says {info.stored_length}"
        )
    if _checksum(stored) != info.checksum:
        raise CorruptValueError(f"chunk {index} fails its checksum")
    if info.codec == "raw":
        raw = stored
    else:
        try:
            raw = decompressor.decompress(
                stored, max_output_size=info.raw_length
            )
        except zstandard.ZstdError as exc:
            raise CorruptValueError(
                f"chunk {index} does not decompress: {exc}"
            ) from exc
    if len(raw) != info.raw_length:
        raise CorruptValueError(
            f"chunk {index} decodes to {len(raw)} bytes, "
            f"manifest says {info.raw_length}"
        )
    return raw


def _checksum(stored: bytes) -> str:
    """Return the BLAKE2b hex digest that guards one stored chunk."""
    return hashlib.blake2b(stored, digest_size=_CHECKSUM_BYTES).hexdigest()


def _manifest_from_document(document: object) -> Manifest:
    """Build a manifest from parsed JSON, checking every field."""
    if not isinstance(document, dict):
        raise CorruptValueError("manifest is not a JSON object")
    version = _get_int(document, "version")
    if version != FORMAT_VERSION:
        raise CorruptValueError(
            f"manifest version {version} is not {FORMAT_VERSION}"
        )
    size = _get_int(document, "size")
    sha256 = _get_hex(document, "sha256", 64)
    token = document.get("token")
    if token is not None and not isinstance(token, str):
        raise CorruptValueError("manifest token is not a string")
    meta = document.get("meta")
    if not isinstance(meta, dict):
        raise CorruptValueError("manifest meta is not a JSON object")
    entries = document.get("chunks")
    if not isinstance(entries, list):
        raise CorruptValueError("manifest chunks is not a list")
    if _get_int(document, "nchunks") != len(entries):
        raise CorruptValueError("manifest nchunks disagrees with its chunks")
    chunks = tuple(
        _chunk_from_entry(index, entry) for index, entry in enumerate(entries)
    )
    if sum(c.raw_length for c in chunks) != size:
        raise CorruptValueError("manifest chunk lengths do not add up")
    return Manifest(
        size=size,
        sha256=sha256,
        chunks=chunks,
        meta=meta,
        token=token,
        version=version,
    )


def _chunk_from_entry(index: int, entry: object) -> ChunkInfo:
    """Parse one ``[codec, raw_length, stored_length, checksum]`` entry."""
    if not isinstance(entry, list) or len(entry) != 4:
        raise CorruptValueError(f"manifest entry of chunk {index} is bad")
    codec, raw_length, stored_length, checksum = entry
    if codec not in {"zstd", "raw"}:
        raise CorruptValueError(f"chunk {index} has unknown codec {codec!r}")
    if not (_is_count(raw_length) and _is_count(stored_length)):
        raise CorruptValueError(f"chunk {index} has bad lengths")
    if not _is_hex(checksum, 2 * _CHECKSUM_BYTES):
        raise CorruptValueError(f"chunk {index} has a bad checksum field")
    return ChunkInfo(codec, raw_length, stored_length, checksum)


def _get_int(document: dict[str, Any], name: str) -> int:
    """Return a non-negative integer field of the manifest."""
    value = document.get(name)
    if not isinstance(value, int) or not _is_count(value):
        raise CorruptValueError(f"manifest {name} is not a count: {value!r}")
    return value


def _get_hex(document: dict[str, Any], name: str, length: int) -> str:
    """Return a lower-case hex field of the given length."""
    value = document.get(name)
    if not _is_hex(value, length):
        raise CorruptValueError(f"manifest {name} is not a hex digest")
    return str(value)


def _is_count(value: object) -> bool:
    """Tell whether ``value`` is a non-negative int (bool excluded)."""
    return type(value) is int and value >= 0


def _is_hex(value: object, length: int) -> bool:
    """Tell whether ``value`` is a lower-case hex string of ``length``."""
    return (
        isinstance(value, str)
        and len(value) == length
        and _HEX_RE.fullmatch(value) is not None
    )
