"""Boxes of an image file, its headers parsed once per process.

A stamp reads a few rows of a visit image and a few corners of its
template patches; parsing their headers and building their WCSs (about
10 ms a file with astropy) cost more than the pixels. `open_image_file`
parses a file once (kept while the file is unchanged: path, size and
modification time) and `ImageFile.region` then reads only the pixels of
a box:

* a losslessly GZIP tile-compressed plane through `recreate.io.tiles`
  (only the tiles the box touches are inflated);
* an uncompressed plane straight from the file (a memory map);
* anything else through astropy, as `recreate.io.read_dp1_region` does.

A region is the `Exposure` `recreate.io.read_dp1_region` gives (its WCS
the whole image's moved to the box, its PSF grid likewise), bit for bit.
An ``lsst.images`` VisitImage (DP2) is read the same way when its mask
bits are those `recreate.io.lsst_images.read` gives (checked once); its
region's WCS is the whole image's moved to the box.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.exposure import Exposure
from recreate.io.afwplanes import labelled_planes, locate_planes
from recreate.io.dp1_read import (
    dp1_shell,
    image_geometry,
    read_dp1_geometry,
    read_dp1_region,
    read_dp1_shell,
)
from recreate.io.fitsfile import open_fits
from recreate.io.input_cache import input_cache
from recreate.io.region import (
    ImageGeometry,
    image_window,
    is_empty,
    window_psf,
    window_shape,
    window_xy0,
)
from recreate.io.tiles import TileLayout, table_layout, tile_layout
from recreate.numerics.box import PixelBox

#: The primary-header card of an ``lsst.images`` file (DP2's types).
LSST_IMAGES_MODEL_KEY = "DATAMODL"

#: Files whose parsed headers a process keeps (a light curve's visit
#: images and the patches they share; a few tens of KB each).
_CACHED_FILES = 256

_PLANES = ("IMAGE", "MASK", "VARIANCE")


@dataclass(frozen=True, eq=False)
class _PlaneSource:
    """How to read a window of one plane without astropy."""

    tiles: TileLayout | None = None
    plane: Hashable = None
    offset: int = 0
    dtype: np.dtype | None = None
    shape: tuple[int, int] = (0, 0)

    def read(self, path: str, rows: slice, cols: slice) -> npt.NDArray:
        """Return the window's pixels, native-endian."""
        if self.tiles is not None:
            decoded = input_cache.read_rows(self.plane, self.tiles, rows)
            return np.ascontiguousarray(decoded[:, cols])
        if self.dtype is None:
            msg = "no direct way to read this plane"
            raise ValueError(msg)
        data = np.memmap(
            path,
            dtype=self.dtype,
            mode="r",
            offset=self.offset,
            shape=self.shape,
        )
        return np.array(data[rows, cols], dtype=self.dtype.newbyteorder("="))


@dataclass(frozen=True, eq=False)
class ImageFile:
    """An image file's geometry and metadata, and how to read its boxes.

    Attributes
    ----------
    path
        The file.
    geometry
        The whole image's WCS, ``xy0`` and shape.
    shell
        The whole image's fields, from its headers (`read_dp1_shell`):
        mask planes, PSF, calibration, observation, metadata.
    planes
        How to read each plane directly; None reads through astropy.
    visit_image
        Whether the file is an ``lsst.images`` VisitImage.
    """

    path: str
    geometry: ImageGeometry
    shell: Exposure
    planes: dict[str, _PlaneSource] | None
    visit_image: bool = False

    def region(self, box: PixelBox) -> Exposure:
        """Return the planes of ``box`` (clipped to the image).

        As `recreate.io.read_dp1_region` returns them.
        """
        geometry = self.geometry
        if self.planes is None:
            if not self.visit_image:
                return read_dp1_region(self.path, box)
            from recreate.io.lsst_images.read import read_visit_image_region

            height, width = geometry.shape
            whole = PixelBox(*geometry.xy0, width, height)
            inside = box.intersection(whole)
            return read_visit_image_region(self.path, inside, whole)[0]
        window = image_window(box, geometry.xy0, geometry.shape)
        rows, cols = window
        if is_empty(window):
            shape = window_shape(window)
            image = np.empty(shape, np.float32)
            mask = np.empty(shape, np.int32)
            variance = np.empty(shape, np.float32)
        else:
            image = self.planes["IMAGE"].read(self.path, rows, cols)
            mask = self.planes["MASK"].read(self.path, rows, cols)
            variance = self.planes["VARIANCE"].read(self.path, rows, cols)
        shell = self.shell
        wcs = geometry.wcs
        return replace(
            shell,
            image=image,
            variance=variance,
            mask=mask.astype(np.int32, copy=False),
            wcs=None if wcs is None else wcs.slice(window),
            xy0=window_xy0(geometry.xy0, window),
            psf=window_psf(shell.psf, window),
            metadata=dict(shell.metadata),
        )

    def image_plane(
        self, box: PixelBox
    ) -> tuple[npt.NDArray[np.float32], tuple[int, int]]:
        """Return the image plane of ``box`` (clipped) and its ``xy0``.

        The pixels `region` gives there, without the variance and mask
        (a stamp's tiles read the image over more rows than the rest).
        """
        if self.planes is None:
            region = self.region(box)
            return region.image, region.xy0
        geometry = self.geometry
        window = image_window(box, geometry.xy0, geometry.shape)
        xy0 = window_xy0(geometry.xy0, window)
        if is_empty(window):
            return np.empty(window_shape(window), np.float32), xy0
        rows, cols = window
        pixels = self.planes["IMAGE"].read(self.path, rows, cols)
        return np.asarray(pixels, dtype=np.float32), xy0


#: Parsed files by (path, size, mtime), least recently used first.
_parsed: OrderedDict[tuple[str, int, int], ImageFile] = OrderedDict()
_lock = threading.Lock()


def open_image_file(path: str | os.PathLike[str]) -> ImageFile:
    """Return the parsed image file at ``path`` (cached while unchanged).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    FormatError
        If the file cannot be read in its layout.
    """
    name = os.fspath(path)
    stat = Path(name).stat()
    version = (name, stat.st_size, stat.st_mtime_ns)
    with _lock:
        parsed = _parsed.get(version)
        if parsed is not None:
            _parsed.move_to_end(version)
            return parsed
    # Parsed outside the lock: two threads may parse one file at once,
    # and keep the same thing.
    parsed = _open(version)
    with _lock:
        _parsed[version] = parsed
        while len(_parsed) > _CACHED_FILES:
            _parsed.popitem(last=False)
    return parsed


def forget_image_file(path: str | os.PathLike[str]) -> None:
    """Drop what this process keeps of a file: headers, decoded rows.

    Its next read parses and decodes it again, as a file never read
    before (a benchmark of never-seen epochs forgets their visit
    images so).
    """
    name = os.fspath(path)
    with _lock:
        for version in [v for v in _parsed if v[0] == name]:
            del _parsed[version]
    input_cache.drop(lambda plane: _plane_of(plane, name))


def _plane_of(plane: Hashable, path: str) -> bool:
    """Say whether an input-cache plane is one of the file at ``path``."""
    return isinstance(plane, tuple) and len(plane) > 0 and plane[0] == path


def _open(version: tuple[str, int, int]) -> ImageFile:
    """Parse a file (``version``: its path, size and mtime)."""
    return _open_tables(version) or _open_astropy(version)


def _open_astropy(version: tuple[str, int, int]) -> ImageFile:
    """Parse a file of any layout read here, as astropy gives its HDUs."""
    path = version[0]
    with open_fits(path) as hdulist:
        if LSST_IMAGES_MODEL_KEY in hdulist[0].header:
            return _open_visit_image(path, hdulist, version)
        geometry = read_dp1_geometry(hdulist)
        shell = read_dp1_shell(hdulist, geometry)
        located = locate_planes(hdulist, path)
        sources = {
            label: _source(located[label], (*version, label))
            for label in _PLANES
        }
    planes = None if None in sources.values() else sources
    return ImageFile(path, geometry, shell, planes)  # type: ignore[arg-type]


def _open_tables(version: tuple[str, int, int]) -> ImageFile | None:
    """Parse an afw-layout file whose planes are all simple GZIP tiles.

    The file is opened with its compressed planes as the tables they
    are stored in: astropy's conversion of each plane's header to an
    image header (about 5 ms of a visit image's 13) is skipped, the
    cards read from them being in the tables' headers as written. The
    geometry and fields are those `_open` reads otherwise (tested on
    every file of the CI repository); None for any other file, which
    `_open` then reads as it always has.
    """
    path = version[0]
    with open_fits(path, tables=True) as hdulist:
        if LSST_IMAGES_MODEL_KEY in hdulist[0].header:
            return None
        tables = _plane_tables(hdulist)
        if tables is None:
            return None
        layouts = {label: table_layout(tables[label]) for label in _PLANES}
        shapes = {
            None if lay is None else lay.shape for lay in layouts.values()
        }
        if len(shapes) != 1 or None in shapes:
            return None
        image = tables["IMAGE"].header
        shape = layouts["IMAGE"].shape  # type: ignore[union-attr]
        geometry = image_geometry(image, shape, path)
        shell = dp1_shell(hdulist, (image, tables["MASK"].header), geometry)
    sources = {
        label: _PlaneSource(layouts[label], (*version, label))
        for label in _PLANES
    }
    return ImageFile(path, geometry, shell, sources)


def _plane_tables(
    hdulist: fits.HDUList,
) -> dict[str, fits.BinTableHDU] | None:
    """Return the planes' compressed tables by label, or None.

    None unless each of IMAGE, MASK and VARIANCE is labelled (EXTTYPE
    or EXTNAME, the first HDU of each label) and a compressed image.
    """
    found = labelled_planes(hdulist)
    if set(found) != set(_PLANES):
        return None
    compressed = all(
        isinstance(hdu, fits.BinTableHDU) and hdu.header.get("ZIMAGE") is True
        for hdu in found.values()
    )
    return found if compressed else None


def _open_visit_image(
    path: str, hdulist: fits.HDUList, version: tuple[str, int, int]
) -> ImageFile:
    """Parse an ``lsst.images`` VisitImage (DP2) once."""
    from lsst.images.fits._common import read_yx0

    from recreate.io.lsst_images.read import (
        mask_bits_are_stored_bits,
        read_visit_image_region,
    )

    image = hdulist["IMAGE"]
    y0, x0 = read_yx0(image.header)
    height, width = (int(n) for n in image.shape)
    whole = PixelBox(int(x0), int(y0), width, height)
    shell, geometry = read_visit_image_region(
        path, PixelBox(whole.x0, whole.y0, 1, 1), whole
    )
    sources = {
        label: _source(hdulist[label], (*version, label)) for label in _PLANES
    }
    direct = None not in sources.values() and mask_bits_are_stored_bits(
        hdulist["MASK"].header, shell.mask_planes
    )
    planes = sources if direct else None
    return ImageFile(path, geometry, shell, planes, visit_image=True)  # type: ignore[arg-type]


def _source(
    hdu: fits.hdu.base.ExtensionHDU, plane: Hashable
) -> _PlaneSource | None:
    """Return how to read a plane directly, or None (astropy reads it).

    ``plane`` names the plane of this version of the file in the input
    cache (`recreate.io.input_cache`).
    """
    if isinstance(hdu, fits.CompImageHDU):
        layout = tile_layout(hdu)
        return None if layout is None else _PlaneSource(layout, plane)
    header = hdu.header
    info = hdu.fileinfo()
    if info is None or header.get("BZERO", 0) != 0:
        return None
    if header.get("BSCALE", 1) != 1 or header.get("NAXIS") != 2:
        return None
    dtype = {-32: ">f4", -64: ">f8", 32: ">i4", 16: ">i2"}.get(
        int(header["BITPIX"])
    )
    if dtype is None:
        return None
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    return _PlaneSource(
        offset=int(info["datLoc"]), dtype=np.dtype(dtype), shape=shape
    )
