"""Boxes of parent-frame pixels, shared by the readers and the pipeline."""

from __future__ import annotations

from typing import NamedTuple


class PixelBox(NamedTuple):
    """A box of parent-frame pixels: origin and size, as afw's ``Box2I``.

    Parameters
    ----------
    x0, y0
        Parent pixel of the box's first column and row.
    width, height
        Number of columns and rows; a box with none is empty.
    """

    x0: int
    y0: int
    width: int
    height: int

    def intersection(self, other: PixelBox) -> PixelBox:
        """Return the overlap of two boxes (possibly empty)."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1 = min(self.x0 + self.width, other.x0 + other.width)
        y1 = min(self.y0 + self.height, other.y0 + other.height)
        return PixelBox(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    @property
    def empty(self) -> bool:
        """Say whether the box holds no pixel."""
        return self.width <= 0 or self.height <= 0
