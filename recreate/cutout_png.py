"""A tiny PNG renderer for cutouts: zscale limits, 8-bit grey, pure numpy.

SODA's ``RESPONSEFORMAT=image/png`` and the light curves' PNG strip
need a quick look, not a figure: the IRAF zscale limits (a line fitted
to the sorted pixels' middle, its slope divided by the contrast, the
way IRAF's ``display`` does it) map the image to 0-255, with NaN black,
and the bytes are a plain PNG written with the standard library's zlib.
The previews of whole detectors have their own, richer renderer.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

__all__ = ["grey_png", "strip", "zscale_limits"]

#: IRAF's defaults: pixels sampled, contrast, and the rejection settings.
SAMPLES = 1000
CONTRAST = 0.25
REJECT_SIGMA = 2.5
MIN_KEPT_FRACTION = 0.5
ITERATIONS = 5


def zscale_limits(image: npt.NDArray[np.floating]) -> tuple[float, float]:
    """Return IRAF's zscale display limits of an image.

    A line is fitted to the sorted finite pixels of a regular sample,
    rejecting outliers; the limits are that line, its slope divided by
    ``CONTRAST``, at the two ends of the sample, clipped to the data.
    """
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    step = max(1, finite.size // SAMPLES)
    sample = np.sort(finite[::step].astype(np.float64))
    n = sample.size
    lo, hi = float(sample[0]), float(sample[-1])
    if n < 5:
        return lo, hi if hi > lo else lo + 1.0
    x = np.arange(n, dtype=np.float64)
    keep = np.ones(n, dtype=bool)
    slope, intercept = 0.0, float(np.median(sample))
    for _ in range(ITERATIONS):
        if keep.sum() < MIN_KEPT_FRACTION * n:
            break
        slope, intercept = np.polyfit(x[keep], sample[keep], 1)
        residuals = sample - (slope * x + intercept)
        spread = float(np.std(residuals[keep])) or 1e-12
        keep = np.abs(residuals) < REJECT_SIGMA * spread
    slope /= CONTRAST
    middle = (n - 1) / 2.0
    median = float(np.median(sample))
    z1 = max(lo, median - slope * middle)
    z2 = min(hi, median + slope * middle)
    if not z2 > z1:
        return lo, hi if hi > lo else lo + 1.0
    return float(z1), float(z2)


def _grey(image: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """Map an image to 0-255 between its zscale limits; NaN is black."""
    z1, z2 = zscale_limits(image)
    scaled = (np.asarray(image, np.float64) - z1) / (z2 - z1)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def grey_png(image: npt.NDArray[np.floating]) -> bytes:
    """Return an image as an 8-bit greyscale PNG, row 0 at the bottom.

    FITS puts row 0 at the bottom and PNG at the top: the rows are
    flipped, so the picture looks as a FITS viewer shows it.
    """
    return _encode(_grey(image)[::-1])


def strip(
    images: list[npt.NDArray[np.floating]], size: int, gap: int = 2
) -> bytes:
    """Return images side by side as one PNG, each scaled on its own.

    Each image is centred in a ``size`` x ``size`` tile (a stamp clipped
    at a detector edge is smaller); tiles are ``gap`` pixels apart.
    """
    width = max(1, len(images) * (size + gap) - gap)
    canvas = np.zeros((size, width), dtype=np.uint8)
    for index, image in enumerate(images):
        tile = _grey(image)[::-1][:size, :size]
        top = (size - tile.shape[0]) // 2
        left = index * (size + gap) + (size - tile.shape[1]) // 2
        canvas[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return _encode(canvas)


def _encode(grey: npt.NDArray[np.uint8]) -> bytes:
    """Return the PNG bytes of an 8-bit greyscale array (top row first)."""
    height, width = grey.shape
    # Filter type 0 (none) at the start of every row.
    raw = np.zeros((height, width + 1), dtype=np.uint8)
    raw[:, 1:] = grey
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)),
            _chunk(b"IEND", b""),
        ]
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    """Return one PNG chunk: length, type, data, CRC."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
