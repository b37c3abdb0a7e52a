"""Read an ``lsst.images`` VisitImage file (DP2's ``visit_image``) as input.

DP2 stores its visit images as `lsst.images.VisitImage`; this turns one
into our `Exposure`, so a DP2-like repository's inputs are read as DP1's
are. What each part becomes:

image, variance
    The arrays; ``xy0`` is the image box's start (parent frame).
mask
    One int32 bit per ``lsst.images`` plane, in the file's order, named
    back to the legacy afw names (``SATURATED`` -> ``SAT``, ...) where
    `recreate.io.lsst_images.mask` renames them on writing.
WCS
    The sky projection as a FITS WCS on the image's array pixels
    (``as_fits_wcs``; an approximation where AST cannot write it exactly).
PSF
    A Gaussian PSF's FWHM (``2.3548 sigma``); the FWHM of other PSF
    models is measured from the stars later, as for files without one.
observation, metadata
    The ``obs_info`` fields we keep; the flexible metadata as it is.

Reading needs the path to end in ``.fits`` (``lsst.images`` picks the
container from it) and imports ``requests``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lsst.images as li
import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS
from lsst.images import psfs

from recreate.errors import FormatError
from recreate.exposure import (
    MAX_MASK_PLANES,
    Exposure,
    MaskPlanes,
    ObservationInfo,
    PhotoCalib,
    PsfInfo,
)
from recreate.io.lsst_images.components import FWHM_PER_SIGMA
from recreate.io.lsst_images.mask import _known_mask_planes
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox


def read_visit_image(path: str | os.PathLike[str]) -> Exposure:
    """Read an ``lsst.images`` VisitImage FITS file as an `Exposure`.

    Parameters
    ----------
    path
        The file; its name must end in ``.fits``.

    Raises
    ------
    FormatError
        If the file cannot be read as a VisitImage, has more mask planes
        than an int32 mask holds, or has no sky projection.
    """
    visit = _read(path)
    return _exposure(visit, visit.image.bbox, os.fspath(path))


def read_visit_image_region(
    path: str | os.PathLike[str], box: PixelBox, whole: PixelBox
) -> tuple[Exposure, ImageGeometry]:
    """Read a box of a VisitImage, and the whole image's geometry.

    Only the box's pixels are read (``lsst.images``' subset read). The
    geometry's WCS is the whole image's, as `read_visit_image` gives it.

    Parameters
    ----------
    path
        The file; its name must end in ``.fits``.
    box
        Parent pixels to read, inside the image.
    whole
        The whole image's box of parent pixels.

    Raises
    ------
    FormatError
        As `read_visit_image`.
    """
    bbox = _box(box)
    visit = _read(path, bbox=bbox)
    source = os.fspath(path)
    exposure = _exposure(visit, bbox, source)
    geometry = ImageGeometry(
        wcs=_array_wcs(visit, _box(whole), source),
        xy0=(whole.x0, whole.y0),
        shape=(whole.height, whole.width),
    )
    return exposure, geometry


def _box(box: PixelBox) -> li.Box:
    """Return an ``lsst.images`` box of parent pixels."""
    return li.Box.factory[
        box.y0 : box.y0 + box.height, box.x0 : box.x0 + box.width
    ]


def _read(path: str | os.PathLike[str], **kwargs: Any) -> li.VisitImage:
    """Read a VisitImage (or a box of it: ``bbox``).

    Raises
    ------
    FormatError
        If the file cannot be read as a VisitImage.
    """
    try:
        return li.VisitImage.read(str(Path(path)), **kwargs)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise FormatError(
            f"{os.fspath(path)}: not an lsst.images VisitImage ({error})"
        ) from None


def _exposure(visit: li.VisitImage, bbox: li.Box, source: str) -> Exposure:
    """Return a VisitImage's pixels on ``bbox`` as an `Exposure`."""
    x0, y0 = int(bbox.x.start), int(bbox.y.start)
    mask, planes = _int32_mask(visit.mask, source)
    return Exposure(
        image=np.asarray(visit.image.array, dtype=np.float32),
        variance=np.asarray(visit.variance.array, dtype=np.float32),
        mask=mask,
        mask_planes=planes,
        wcs=_array_wcs(visit, bbox, source),
        xy0=(x0, y0),
        psf=_psf(visit.psf),
        photo_calib=_photo_calib(visit),
        observation=_observation(visit),
        metadata=dict(visit.metadata),
    )


def _int32_mask(
    mask: li.Mask, source: str
) -> tuple[npt.NDArray[np.int32], MaskPlanes]:
    """Return the mask as int32 bits with legacy plane names."""
    legacy, _ = _known_mask_planes()
    back = {plane.name: name for name, plane in legacy.items()}
    names = [plane.name for plane in mask.schema if plane is not None]
    if len(names) > MAX_MASK_PLANES:
        raise FormatError(
            f"{source}: {len(names)} mask planes do not fit an int32 mask"
        )
    out = np.zeros(mask.array.shape[:2], dtype=np.int32)
    bits: dict[str, int] = {}
    for bit, name in enumerate(names):
        on = mask.get(name)
        out[on] |= np.int32(1 << bit) if bit < 31 else np.int32(-(2**31))
        bits[back.get(name, name)] = bit
    return out, MaskPlanes(bits)


def mask_bits_are_stored_bits(header: Any, planes: MaskPlanes) -> bool:
    """Say whether `_int32_mask` keeps each stored plane on its own bit.

    A VisitImage's MASK HDU names plane ``n`` (bit ``1 << n``) in its
    ``MSKNnnnn`` cards; when every such plane has bit ``n`` in ``planes``
    (and no other plane exists), the stored int32 values are the mask.
    """
    legacy, _ = _known_mask_planes()
    back = {plane.name: name for name, plane in legacy.items()}
    stored: dict[str, int] = {}
    for n in range(MAX_MASK_PLANES):
        name = header.get(f"MSKN{n:04d}")
        if name is None:
            continue
        if header.get(f"MSKM{n:04d}") != 1 << n:
            return False
        stored[back.get(name, name)] = n
    return stored == {name: planes.bit(name) for name in planes.names}


def _array_wcs(visit: li.VisitImage, bbox: li.Box, source: str) -> WCS:
    """Return the sky projection as a FITS WCS on the array pixels."""
    projection = visit.sky_projection
    wcs = (
        None
        if projection is None
        else projection.as_fits_wcs(bbox, allow_approximation=True)
    )
    if wcs is None:
        raise FormatError(f"{source}: the visit image has no sky projection")
    return wcs


def _psf(psf: Any) -> PsfInfo | None:
    """Return a Gaussian PSF's FWHM; None for any other model."""
    if isinstance(psf, psfs.GaussianPointSpreadFunction):
        return PsfInfo(fwhm=float(psf.sigma) * FWHM_PER_SIGMA)
    return None


def _photo_calib(visit: li.VisitImage) -> PhotoCalib:
    """Return nJy per electron from a constant photometric scaling.

    The writer stores a constant Chebyshev field (one coefficient); a
    varying one (Rubin's) is taken at its constant term.
    """
    scaling = visit.photometric_scaling
    coefficients = getattr(scaling, "coefficients", None)
    if coefficients is None:
        return PhotoCalib()
    return PhotoCalib(njy_per_electron=float(np.ravel(coefficients)[0]))


def _observation(visit: li.VisitImage) -> ObservationInfo:
    """Return the observation fields we keep from ``obs_info``."""
    info = visit.obs_info
    times = info.datetime_begin, info.datetime_end
    date_avg = None
    if times[0] is not None and times[1] is not None:
        middle = times[0].tai + 0.5 * (times[1].tai - times[0].tai)
        date_avg = middle.isot
    radec = info.tracking_radec
    rotation = info.boresight_rotation_angle
    exposure_time = info.exposure_time
    return ObservationInfo(
        instrument=str(info.instrument),
        band=str(visit.band),
        physical_filter=info.physical_filter,
        visit=info.visit_id,
        detector=info.detector_num,
        detector_name=info.detector_unique_name,
        day_obs=info.observing_day,
        exposure_time=None
        if exposure_time is None
        else float(exposure_time.to_value("s")),
        date_avg=date_avg,
        boresight_ra=None if radec is None else float(radec.ra.deg),
        boresight_dec=None if radec is None else float(radec.dec.deg),
        rotation_angle=None if rotation is None else float(rotation.deg),
        airmass=info.boresight_airmass,
    )
