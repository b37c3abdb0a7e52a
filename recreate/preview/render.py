"""Pixels to display colours: block means, stretch, tints, outlines.

A preview shows a detector (or a region) at most `MAX_SIDE` pixels on
its longer side: the image is reduced by whole blocks of
``factor x factor`` pixels, each the mean of its finite pixels (a
full 4072x4000 detector becomes 1018x1000 at factor 4) and its mask the
OR of the block's, so a masked or detected pixel is never lost by the
reduction. Then

* the values go to grey through a stretch (`recreate.preview.scale`),
  its limits from a sample of the full-resolution good pixels;
* pixels with an unusable plane (NO_DATA, BAD, EDGE) are tinted blue,
  saturated or suspect ones (SAT, SAT_TEMPLATE, CR, SUSPECT) orange;
* the outlines of the positive detections (DETECTED) are drawn green,
  of the negative ones (DETECTED_NEGATIVE) magenta;
* rows are flipped so that y grows upwards, as ds9 and Firefly show
  FITS images.

A triplet puts science, template and difference side by side, `GAP`
pixels apart; science and template share the science image's limits
(same units, so they compare), the difference has its own. A strip (a
light curve's stamps) puts panels side by side in square tiles, each
centred in its tile and stretched on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.preview.scale import grid_sample, stretch_to_bytes

__all__ = [
    "GAP",
    "MAX_SIDE",
    "PreviewLayout",
    "block_mean",
    "block_or",
    "preview_layout",
    "render_panel",
    "render_strip",
    "render_triplet",
]

#: Longest side of one panel of a preview (pixels).
MAX_SIDE = 1024
#: Longest side of each panel of a triplet (three side by side).
TRIPLET_MAX_SIDE = 640
#: Pixels between the panels of a triplet.
GAP = 4
#: Colour of the gaps and of pixels with no value.
BACKGROUND = (24, 24, 24)

UNUSABLE_PLANES = ("NO_DATA", "BAD", "EDGE")
SUSPECT_PLANES = ("SAT", "SAT_TEMPLATE", "CR", "SUSPECT")
UNUSABLE_TINT = (50, 90, 220)
SUSPECT_TINT = (240, 150, 30)
#: How much of a tinted pixel is the tint.
TINT_WEIGHT = 0.55
POSITIVE_OUTLINE = (40, 230, 40)
NEGATIVE_OUTLINE = (235, 40, 235)

Rgb = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class PreviewLayout:
    """Where a preview's panels lie, and their scale.

    Attributes
    ----------
    factor
        Image pixels per preview pixel along each axis.
    panel_width, panel_height
        Size of each panel (preview pixels).
    panels
        1 for a difference, 3 for a triplet (science, template,
        difference from the left).
    gap
        Pixels between panels.
    """

    factor: int
    panel_width: int
    panel_height: int
    panels: int
    gap: int = GAP

    @property
    def size(self) -> tuple[int, int]:
        """Return the PNG's ``(width, height)``."""
        width = self.panels * self.panel_width + (self.panels - 1) * self.gap
        return width, self.panel_height

    def to_dict(self) -> dict[str, int]:
        """Return the layout as JSON-able numbers (the viewer's)."""
        width, height = self.size
        return {
            "factor": self.factor,
            "panel_width": self.panel_width,
            "panel_height": self.panel_height,
            "panels": self.panels,
            "gap": self.gap,
            "width": width,
            "height": height,
        }


def preview_layout(shape: tuple[int, int], panels: int = 1) -> PreviewLayout:
    """Return the layout of a preview of an image of ``(height, width)``."""
    height, width = shape
    side = MAX_SIDE if panels == 1 else TRIPLET_MAX_SIDE
    factor = max(1, math.ceil(max(height, width) / side))
    return PreviewLayout(
        factor, -(-width // factor), -(-height // factor), panels
    )


def block_mean(
    image: npt.NDArray[np.floating], factor: int
) -> npt.NDArray[np.float32]:
    """Return the means of the finite pixels of ``factor``-blocks.

    Pixels past the last whole block count as missing; a block with no
    finite pixel is NaN. The sums run over the block's offsets in a
    fixed order (deterministic), on strided views: no copy of the
    image. A block holding a non-finite pixel (rare: NO_DATA) is
    averaged again over its finite pixels alone.
    """
    image = np.asarray(image, dtype=np.float32)
    if factor == 1:
        return image.copy()
    padded = _padded(image, factor, np.nan)
    sums = _reduce_offsets(padded, factor, np.add)
    out = (sums / np.float32(factor * factor)).astype(np.float32, copy=False)
    broken = ~np.isfinite(out)
    if broken.any():
        rows, cols = np.nonzero(broken)
        blocks = padded.reshape(out.shape[0], factor, out.shape[1], factor)
        values = blocks[rows, :, cols, :].reshape(rows.size, -1)
        finite = np.isfinite(values)
        count = finite.sum(axis=1)
        total = np.where(finite, values, 0.0).sum(axis=1, dtype=np.float32)
        means = np.full(rows.size, np.nan, dtype=np.float32)
        np.divide(total, count, out=means, where=count > 0)
        out[rows, cols] = means
    return out


def block_or(
    mask: npt.NDArray[np.integer], factor: int
) -> npt.NDArray[np.int32]:
    """Return the OR of the mask bits of ``factor``-blocks."""
    bits: npt.NDArray[np.int32] = np.asarray(mask, dtype=np.int32)
    if factor == 1:
        return bits
    reduced: npt.NDArray[np.int32] = _reduce_offsets(
        _padded(bits, factor, 0), factor, np.bitwise_or
    )
    return reduced


def _padded(array: np.ndarray, factor: int, fill: float) -> np.ndarray:
    """Return ``array`` grown with ``fill`` to whole blocks (or itself)."""
    height, width = array.shape
    pad_y, pad_x = -height % factor, -width % factor
    if not (pad_y or pad_x):
        return array
    return np.pad(array, ((0, pad_y), (0, pad_x)), constant_values=fill)


def _reduce_offsets(
    array: np.ndarray, factor: int, ufunc: np.ufunc
) -> np.ndarray:
    """Combine the pixels of each block with ``ufunc``, offset by offset."""
    columns = array[:, 0::factor].copy()
    for dx in range(1, factor):
        ufunc(columns, array[:, dx::factor], out=columns)
    out = columns[0::factor].copy()
    for dy in range(1, factor):
        ufunc(out, columns[dy::factor], out=out)
    return out


def render_panel(
    image: npt.NDArray[np.floating],
    stretch: str,
    *,
    mask: npt.NDArray[np.integer] | None = None,
    planes: MaskPlanes | None = None,
    factor: int = 1,
    sample: npt.NDArray[np.float64] | None = None,
) -> Rgb:
    """Return one panel as RGB, rows flipped so that y grows upwards.

    Parameters
    ----------
    image
        The full-resolution values.
    stretch
        ``zscale`` or ``asinh``.
    mask, planes
        The mask and its planes: tints and detection outlines (none
        without them).
    factor
        Block size of the reduction.
    sample
        The sorted sample that sets the limits; drawn from ``image``'s
        good pixels when omitted.
    """
    if sample is None:
        bad = 0
        if mask is not None and planes is not None:
            bad = planes.value_of_present(UNUSABLE_PLANES + SUSPECT_PLANES)
        sample = grid_sample(image, mask, bad)
    reduced = block_mean(image, factor)
    grey = stretch_to_bytes(reduced, sample, stretch)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgb[~np.isfinite(reduced)] = BACKGROUND
    if mask is not None and planes is not None:
        _paint_mask(rgb, block_or(mask, factor), planes)
    return np.ascontiguousarray(rgb[::-1])


def _paint_mask(
    rgb: Rgb, mask: npt.NDArray[np.int32], planes: MaskPlanes
) -> None:
    """Tint masked pixels and outline detections, in place."""
    for names, tint in (
        (UNUSABLE_PLANES, UNUSABLE_TINT),
        (SUSPECT_PLANES, SUSPECT_TINT),
    ):
        bits = planes.value_of_present(names)
        if bits:
            _tint(rgb, (mask & bits) != 0, tint)
    for name, colour in (
        ("DETECTED", POSITIVE_OUTLINE),
        ("DETECTED_NEGATIVE", NEGATIVE_OUTLINE),
    ):
        if name in planes:
            rgb[_outline((mask & planes.value(name)) != 0)] = colour


def _tint(
    rgb: Rgb, where: npt.NDArray[np.bool_], tint: tuple[int, ...]
) -> None:
    """Blend ``tint`` into the pixels ``where`` is true."""
    if not where.any():
        return
    blended = (1.0 - TINT_WEIGHT) * rgb[where] + TINT_WEIGHT * np.asarray(
        tint, dtype=np.float64
    )
    rgb[where] = np.round(blended).astype(np.uint8)


def _outline(region: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Return the pixels of ``region`` with a 4-neighbour outside it."""
    padded = np.pad(region, 1)
    interior = (
        padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )
    return region & ~interior


def render_triplet(
    science: npt.NDArray[np.floating],
    template: npt.NDArray[np.floating],
    difference: npt.NDArray[np.floating],
    stretch: str,
    *,
    mask: npt.NDArray[np.integer] | None = None,
    planes: MaskPlanes | None = None,
) -> Rgb:
    """Return science, template and difference side by side as RGB.

    The three arrays have the same shape (the template already on the
    science grid); ``mask`` and ``planes`` are the difference's.
    """
    layout = preview_layout(difference.shape, panels=3)
    science_sample = grid_sample(science)
    panels = (
        render_panel(
            science, stretch, factor=layout.factor, sample=science_sample
        ),
        render_panel(
            template, stretch, factor=layout.factor, sample=science_sample
        ),
        render_panel(
            difference, stretch, mask=mask, planes=planes, factor=layout.factor
        ),
    )
    width, height = layout.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    step = layout.panel_width + layout.gap
    for index, panel in enumerate(panels):
        x0 = index * step
        out[:, x0 : x0 + layout.panel_width] = panel
    return out


def render_strip(panels: list[Rgb], side: int, gap: int = GAP) -> Rgb:
    """Return panels side by side, each centred in a ``side`` tile.

    A panel larger than its tile (it never is for a stamp) is cropped;
    a smaller one (a stamp clipped at a detector's edge) sits in the
    middle. Tiles are ``gap`` pixels apart on the background colour;
    no panel at all is a tile-high strip one pixel wide.
    """
    width = max(1, len(panels) * (side + gap) - gap)
    out = np.empty((side, width, 3), dtype=np.uint8)
    out[:] = BACKGROUND
    for index, panel in enumerate(panels):
        tile = panel[:side, :side]
        top = (side - tile.shape[0]) // 2
        left = index * (side + gap) + (side - tile.shape[1]) // 2
        out[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return out
