"""Where a render reads and computes: the tile grid and the halos.

Everything is in the science image's array pixels (``x`` columns, ``y``
rows, the detector's first pixel at 0); the warped template's grown
grid is the same shifted by the template border.

The only steps whose value at a pixel could depend on how much of the
image is computed are the two Fourier-space ones: the convolution of
the template with the matching kernel and the decorrelation. Both run
on a fixed grid of square tiles of ``tile`` px anchored to the
detector's first pixel, never on the box asked for: a tile's
decorrelated pixels are computed from the difference over the tile
grown by the decorrelation kernel's half-width, itself from the
template convolved over that, which reads the template over the tile
grown by both half-widths, each through FFTs of one fixed size. So a
tile's pixels are the same whether the whole detector or a 1x1 box is
rendered, and a region is made of the same tiles as the full product.

Every other step is exact pixel by pixel (the warp, the variance and
mask planes, the mask growth, the detection planes, the background
models), and needs only a halo: the detection planes look
`detection_halo` px around a pixel, the grown template mask the kernel
half-width further.
"""

from __future__ import annotations

from dataclasses import dataclass

from recreate.numerics.box import PixelBox


@dataclass(frozen=True)
class Halos:
    """The distances that make a render's boxes.

    Attributes
    ----------
    kernel
        The matching kernel's half-width.
    decorrelation
        The decorrelation kernel's half-width.
    detection
        How far a pixel's detection planes look (`detection_halo`).
    border
        The warped template's border around the science grid.
    """

    kernel: int
    decorrelation: int
    detection: int
    border: int


@dataclass(frozen=True)
class RenderPlan:
    """The boxes one render works on (science array pixels).

    Attributes
    ----------
    box
        The pixels asked for (inside the detector).
    detection
        ``box`` grown by the detection halo (inside the detector): the
        pixels whose planes the detection step reads.
    tiles
        The tiles that cover ``detection``, each inside the detector.
    tiled
        The union of ``tiles``.
    difference
        ``tiled`` grown by the decorrelation half-width, inside the
        detector: the science pixels read, and the difference computed.
    template
        What is read of the warped template, in grown-grid pixels: the
        tiles' convolution inputs, inside the grown grid.
    template_mask
        Where the template's mask must be exact (grown-grid pixels):
        ``detection`` grown by the kernel half-width, whose mask the
        kernel dilates onto ``detection``.
    """

    box: PixelBox
    detection: PixelBox
    tiles: tuple[PixelBox, ...]
    tiled: PixelBox
    difference: PixelBox
    template: PixelBox
    template_mask: PixelBox


def grow(box: PixelBox, margin: int) -> PixelBox:
    """Return ``box`` grown by ``margin`` px on every side."""
    return PixelBox(
        box.x0 - margin,
        box.y0 - margin,
        box.width + 2 * margin,
        box.height + 2 * margin,
    )


def shift(box: PixelBox, dx: int, dy: int) -> PixelBox:
    """Return ``box`` moved by ``(dx, dy)``."""
    return PixelBox(box.x0 + dx, box.y0 + dy, box.width, box.height)


def union(boxes: tuple[PixelBox, ...]) -> PixelBox:
    """Return the smallest box holding non-empty boxes."""
    x0 = min(b.x0 for b in boxes)
    y0 = min(b.y0 for b in boxes)
    x1 = max(b.x0 + b.width for b in boxes)
    y1 = max(b.y0 + b.height for b in boxes)
    return PixelBox(x0, y0, x1 - x0, y1 - y0)


def tiles_covering(
    box: PixelBox, shape: tuple[int, int], tile: int
) -> tuple[PixelBox, ...]:
    """Return the grid tiles (inside the detector) that meet ``box``.

    The grid's tiles are ``tile`` px squares from pixel ``(0, 0)``; the
    last ones in each direction stop at the detector's edge. Row-major.
    """
    height, width = shape
    first_x, first_y = box.x0 // tile, box.y0 // tile
    last_x = (box.x0 + box.width - 1) // tile
    last_y = (box.y0 + box.height - 1) // tile
    detector = PixelBox(0, 0, width, height)
    return tuple(
        PixelBox(tx * tile, ty * tile, tile, tile).intersection(detector)
        for ty in range(first_y, last_y + 1)
        for tx in range(first_x, last_x + 1)
    )


def plan_render(
    box: PixelBox, shape: tuple[int, int], tile: int, halos: Halos
) -> RenderPlan:
    """Return the boxes a render of ``box`` works on.

    Parameters
    ----------
    box
        Science array pixels, inside the detector, not empty.
    shape
        The detector's ``(height, width)``.
    tile
        The tile side.
    halos
        The kernels' half-widths and the detection halo.

    Raises
    ------
    ValueError
        If ``box`` is empty or leaves the detector.
    """
    height, width = shape
    detector = PixelBox(0, 0, width, height)
    if box.empty or box.intersection(detector) != box:
        raise ValueError(f"box {tuple(box)} is empty or leaves the detector")
    detection = grow(box, halos.detection).intersection(detector)
    tiles = tiles_covering(detection, shape, tile)
    tiled = union(tiles)
    difference = grow(tiled, halos.decorrelation).intersection(detector)
    reach = halos.decorrelation + halos.kernel
    grown = PixelBox(0, 0, width + 2 * halos.border, height + 2 * halos.border)
    template = shift(grow(tiled, reach), halos.border, halos.border)
    template_mask = shift(
        grow(detection, halos.kernel), halos.border, halos.border
    )
    return RenderPlan(
        box=box,
        detection=detection,
        tiles=tiles,
        tiled=tiled,
        difference=difference,
        template=template.intersection(grown),
        template_mask=template_mask.intersection(grown),
    )
