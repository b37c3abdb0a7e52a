"""Parts of images: boxes of parent pixels, and what a cut-out keeps.

A cut-out is an image in its own right: its arrays are the pixels of a
window of the image, its ``xy0`` is the window's origin in the parent
frame, and its WCS is the image's with the reference pixel (and the SIP
reference pixel) moved by the window's offset, so that every pixel lands
where it did on the sky. The node positions of a PSF grid, in array
pixels, move with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from recreate.exposure import PsfGrid, PsfInfo
from recreate.numerics.box import PixelBox

if TYPE_CHECKING:
    from astropy.wcs import WCS

    from recreate.io.fitsfile import Window


class ImageGeometry(NamedTuple):
    """Where the pixels of a whole image lie, as its headers say.

    Parameters
    ----------
    wcs
        Celestial WCS of the image's array pixels, if it has one.
    xy0
        Origin of the array in the parent pixel frame.
    shape
        Array shape, ``(height, width)``.
    """

    wcs: WCS | None
    xy0: tuple[int, int]
    shape: tuple[int, int]


def image_window(
    box: PixelBox, xy0: tuple[int, int], shape: tuple[int, int]
) -> Window:
    """Return the array rows and columns of ``box``, clipped to an image.

    Parameters
    ----------
    box
        The box, in the image's parent frame.
    xy0
        The image's origin in the parent frame.
    shape
        The image's array shape.

    Returns
    -------
    window
        ``(rows, columns)`` slices with ``0 <= start <= stop <= size``;
        empty (``start == stop``) along an axis where the box misses the
        image.
    """
    height, width = shape
    x0 = min(max(box.x0 - xy0[0], 0), width)
    y0 = min(max(box.y0 - xy0[1], 0), height)
    x1 = min(max(box.x0 + box.width - xy0[0], x0), width)
    y1 = min(max(box.y0 + box.height - xy0[1], y0), height)
    return slice(y0, y1), slice(x0, x1)


def is_empty(window: Window) -> bool:
    """Say whether a window holds no pixel."""
    rows, columns = window
    return rows.stop <= rows.start or columns.stop <= columns.start


def window_shape(window: Window) -> tuple[int, int]:
    """Return the array shape of a window."""
    rows, columns = window
    return rows.stop - rows.start, columns.stop - columns.start


def window_xy0(xy0: tuple[int, int], window: Window) -> tuple[int, int]:
    """Return the parent-frame origin of a window of an image at ``xy0``."""
    rows, columns = window
    return xy0[0] + columns.start, xy0[1] + rows.start


def window_wcs(wcs: WCS | None, window: Window) -> WCS | None:
    """Return the WCS of a window's array pixels.

    astropy's `~astropy.wcs.WCS.slice` moves both the reference pixel
    and the SIP reference pixel by the window's offset.
    """
    if wcs is None:
        return None
    return wcs.slice(window)


def window_psf(psf: PsfInfo | None, window: Window) -> PsfInfo | None:
    """Return PSF information with grid nodes in a window's array pixels."""
    if psf is None or psf.grid is None:
        return psf
    rows, columns = window
    grid = psf.grid
    moved = PsfGrid(
        xs=grid.xs - columns.start, ys=grid.ys - rows.start, images=grid.images
    )
    return PsfInfo(fwhm=psf.fwhm, grid=moved)
