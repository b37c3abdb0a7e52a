"""The ``PSF_GRID`` extension: PSF images sampled on a grid of positions.

Layout
------
An image HDU with ``EXTNAME = EXTTYPE = 'PSF_GRID'`` holding a float32
4-D array of shape ``(ny, nx, h, w)`` (FITS ``NAXIS1 = w`` ...
``NAXIS4 = ny``). The grid positions, in array pixels of the exposure,
are header cards ``GRIDX001 ... GRIDXnnn`` (columns, ascending) and
``GRIDY001 ... GRIDYnnn`` (rows). Cards rather than a table keep the
extension self-contained and readable in any FITS viewer; 999 nodes per
axis is far beyond any useful PSF grid. A 3-D ``(ny*nx, h, w)`` cube in
row-major grid order is also accepted on reading.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import PsfGrid
from recreate.io.cards import Card, add_cards
from recreate.io.fitsfile import hdu_label, read_array

PSF_GRID_EXTNAME = "PSF_GRID"
_MAX_NODES = 999


def psf_grid_hdu(grid: PsfGrid) -> fits.ImageHDU:
    """Return the ``PSF_GRID`` extension of a PSF grid.

    Raises
    ------
    FormatError
        If an axis has more than 999 nodes.
    """
    header = fits.Header()
    add_cards(header, psf_grid_cards(grid))
    data = np.asarray(grid.images, dtype=np.float32)
    return fits.ImageHDU(data=data, header=header, name=PSF_GRID_EXTNAME)


def psf_grid_cards(grid: PsfGrid) -> list[Card]:
    """Return the extension's own cards (astropy appends ``EXTNAME``).

    Raises
    ------
    FormatError
        If an axis has more than 999 nodes.
    """
    return [
        ("EXTTYPE", PSF_GRID_EXTNAME, ""),
        ("INHERIT", True, ""),
        *_axis_cards("X", grid.xs),
        *_axis_cards("Y", grid.ys),
    ]


def _axis_cards(axis: str, nodes: npt.NDArray[np.float64]) -> list[Card]:
    """Return the ``GRID<axis>nnn`` cards, one per node."""
    if len(nodes) > _MAX_NODES:
        raise FormatError(
            f"PSF grid has {len(nodes)} {axis} nodes; at most {_MAX_NODES}"
        )
    _check_ascending(nodes, axis, "PSF grid")
    return [
        (
            f"GRID{axis}{index:03d}",
            float(node),
            f"array-pixel {axis.lower()} of grid node {index}",
        )
        for index, node in enumerate(nodes, start=1)
    ]


def read_psf_grid(hdulist: fits.HDUList, source: str) -> PsfGrid | None:
    """Return the PSF grid of a file, or None if it has no ``PSF_GRID``.

    Parameters
    ----------
    hdulist
        The open file.
    source
        The file name, for error messages.

    Returns
    -------
    grid
        The grid, or None.

    Raises
    ------
    FormatError
        If the extension's shape and its node cards disagree, or a node
        card is not a number.
    """
    hdu = next(
        (h for h in hdulist[1:] if hdu_label(h) == PSF_GRID_EXTNAME), None
    )
    if hdu is None:
        return None
    xs = _axis_nodes(hdu.header, "X", source)
    ys = _axis_nodes(hdu.header, "Y", source)
    images = read_array(hdu, "PSF_GRID extension", source)
    if images.ndim == 3 and images.shape[0] == len(xs) * len(ys):
        images = images.reshape(len(ys), len(xs), *images.shape[1:])
    try:
        return PsfGrid(xs=xs, ys=ys, images=images.astype(np.float32))
    except FormatError as exc:
        raise FormatError(f"{source}: {exc}") from exc


def _axis_nodes(
    header: fits.Header, axis: str, source: str
) -> npt.NDArray[np.float64]:
    """Read the consecutive ``GRID<axis>nnn`` cards of one axis."""
    nodes: list[float] = []
    while (key := f"GRID{axis}{len(nodes) + 1:03d}") in header:
        value = header[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FormatError(f"{source}: card {key}={value!r} not a number")
        nodes.append(float(value))
    if not nodes:
        raise FormatError(f"{source}: PSF_GRID has no GRID{axis}001 card")
    array = np.array(nodes, dtype=np.float64)
    _check_ascending(array, axis, f"{source}: PSF_GRID")
    return array


def _check_ascending(
    nodes: npt.NDArray[np.float64], axis: str, where: str
) -> None:
    """Reject grid nodes that are not strictly ascending and finite.

    PsfGrid interpolates with a bisection search that assumes this.
    """
    if not np.all(np.isfinite(nodes)) or np.any(np.diff(nodes) <= 0):
        raise FormatError(
            f"{where} {axis} nodes are not strictly ascending: {nodes}"
        )
