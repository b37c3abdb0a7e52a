"""Build an ``lsst.images.DifferenceImage`` and write it to FITS."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lsst.images as li
import lsst.images.fits
from lsst.images.fits import FitsCompressionOptions

from recreate.errors import FormatError
from recreate.exposure import Exposure, ObservationInfo, PsfInfo
from recreate.io.fitsfile import atomic_destination
from recreate.io.lsst_images.components import (
    _gaussian_psf,
    _template_info,
    _to_kernel,
)
from recreate.io.lsst_images.detector import (
    _check_on_detector,
    _comcam_detector,
)
from recreate.io.lsst_images.lossy16 import lossy16_options, lossy16_settings
from recreate.io.lsst_images.mask import _to_mask
from recreate.io.lsst_images.model import KernelModel, TemplateProvenance
from recreate.io.lsst_images.observation import (
    _photometric_scaling,
    _to_obs_info,
    _unit_and_metadata,
)

if TYPE_CHECKING:
    from astropy.wcs import WCS


def to_difference_image(
    exposure: Exposure,
    kernel: KernelModel,
    templates: Sequence[TemplateProvenance],
) -> li.DifferenceImage:
    """Build the ``lsst.images`` difference image of an exposure.

    Parameters
    ----------
    exposure
        The difference image. It needs a WCS, a PSF and observation
        info naming the physical filter and the (LSSTComCam) detector.
    kernel
        The matching kernel, in the exposure's array pixels.
    templates
        The template patches used.

    Returns
    -------
    difference_image
        The DP2-style difference image; it shares no arrays with
        ``exposure`` but the image and variance planes.

    Raises
    ------
    FormatError
        If the exposure lacks what a `lsst.images.DifferenceImage` needs
        (the message names everything missing), its instrument is not
        LSSTComCam, it does not fit on the detector, a mask bit is set
        that no plane names, its unit or metadata cannot be represented,
        or a template does not overlap it.
    """
    parts = _visit_parts(exposure)
    bbox = parts["bounds"]
    return li.DifferenceImage(
        **parts,
        kernel=_to_kernel(kernel, exposure.xy0),
        templates=[
            info
            for template in templates
            if (info := _template_info(template, bbox, exposure.xy0))
            is not None
        ],
    )


def to_visit_image(exposure: Exposure) -> li.VisitImage:
    """Build the ``lsst.images`` visit image of an exposure (DP2's type).

    The components are made as for `to_difference_image` (package
    notes): a PSF grid is not carried, only a Gaussian of the FWHM.

    Raises
    ------
    FormatError
        As for `to_difference_image`.
    """
    return li.VisitImage(**_visit_parts(exposure))


def _visit_parts(exposure: Exposure) -> dict[str, Any]:
    """Return the components a VisitImage and a DifferenceImage share."""
    wcs, psf, observation = _require_parts(exposure)
    bbox = _image_box(exposure)
    detector = _comcam_detector(observation)
    _check_on_detector(bbox, detector)
    unit, metadata = _unit_and_metadata(exposure.metadata)
    projection = li.SkyProjection.from_fits_wcs(
        wcs,
        detector.frame,
        pixel_bounds=bbox,
        x0=exposure.xy0[0],
        y0=exposure.xy0[1],
    )
    return {
        "image": li.Image(exposure.image, bbox=bbox, unit=unit),
        "mask": _to_mask(exposure.mask, exposure.mask_planes, bbox),
        "variance": li.Image(exposure.variance, bbox=bbox, unit=unit**2),
        "sky_projection": projection,
        "bounds": bbox,
        "obs_info": _to_obs_info(observation),
        "photometric_scaling": _photometric_scaling(
            exposure.photo_calib, unit, bbox
        ),
        "psf": _gaussian_psf(psf, bbox),
        "detector": detector,
        "band": observation.band,
        "metadata": metadata,
    }


def write_lsst_images(
    exposure: Exposure,
    kernel: KernelModel,
    templates: Sequence[TemplateProvenance],
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    lossy16: bool = False,
) -> None:
    """Write a difference image as an ``lsst.images`` FITS file, atomically.

    The file is written under a hidden temporary name in the same
    directory, synced and renamed over ``path``, so ``path`` is either
    complete or untouched. Name it ``*.fits`` for
    ``lsst.images.DifferenceImage.read`` to recognise it.

    Parameters
    ----------
    exposure, kernel, templates
        As for `to_difference_image`.
    path
        The file to write.
    overwrite
        Replace an existing file when true.
    lossy16
        Quantise the image and variance as DP2's ``lossy16`` write
        recipe does (`recreate.io.lsst_images.lossy16`); else lossless.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    FormatError
        As for `to_difference_image`; with ``lossy16``, if the exposure
        has no data ID for the dither seed.
    """
    options = _compression(exposure, lossy16=lossy16)
    with atomic_destination(path, overwrite=overwrite) as temp:
        image = to_difference_image(exposure, kernel, templates)
        # lsst.images creates the file itself (it refuses an existing
        # one) and reopens it by name to patch the primary header.
        lsst.images.fits.write(image, temp, compression_options=options)


def write_visit_image(
    exposure: Exposure,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> None:
    """Write a visit image as an ``lsst.images`` VisitImage, atomically.

    Lossless (GZIP_2), as ``lsst.images`` writes by default.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FormatError
        As for `to_visit_image`.
    """
    with atomic_destination(path, overwrite=overwrite) as temp:
        lsst.images.fits.write(to_visit_image(exposure), temp)


def difference_image_bytes(
    exposure: Exposure,
    kernel: KernelModel,
    templates: Sequence[TemplateProvenance],
    *,
    lossy16: bool = False,
) -> bytes:
    """Return the content of the file `write_lsst_images` writes.

    ``lsst.images`` writes only to named files, so this writes to a
    private temporary directory and reads the file back. The bytes
    differ from write to write in their time stamps only (see the package
    notes).

    Parameters
    ----------
    exposure, kernel, templates, lossy16
        As for `write_lsst_images`.

    Returns
    -------
    content
        The FITS file's bytes.

    Raises
    ------
    FormatError
        As for `write_lsst_images`.
    """
    options = _compression(exposure, lossy16=lossy16)
    image = to_difference_image(exposure, kernel, templates)
    with tempfile.TemporaryDirectory(prefix="recreate-lsst-images-") as tmp:
        path = Path(tmp) / "difference_image.fits"
        lsst.images.fits.write(image, path, compression_options=options)
        return path.read_bytes()


def _compression(
    exposure: Exposure, *, lossy16: bool
) -> dict[str, FitsCompressionOptions | None] | None:
    """Return lossy16's options, or None for the lossless default."""
    if not lossy16:
        return None
    return lossy16_options(lossy16_settings(exposure), exposure.shape[1])


def _require_parts(
    exposure: Exposure,
) -> tuple[WCS, PsfInfo, ObservationInfo]:
    """Return the WCS, PSF and observation info, or name all that lack.

    Raises
    ------
    FormatError
        If any of them is missing, or the observation info lacks the
        physical filter or detector number.
    """
    wcs, psf, observation = exposure.wcs, exposure.psf, exposure.observation
    missing = []
    if wcs is None:
        missing.append("a celestial WCS")
    if psf is None:
        missing.append("a PSF")
    if observation is None:
        missing.append("observation info")
    else:
        if observation.physical_filter is None:
            missing.append("observation.physical_filter")
        if observation.detector is None:
            missing.append("observation.detector")
    # The None tests repeat the ones above so that mypy sees them.
    if missing or wcs is None or psf is None or observation is None:
        raise FormatError(
            "cannot make an lsst.images DifferenceImage: the exposure "
            f"lacks {', '.join(missing)}"
        )
    return wcs, psf, observation


def _image_box(exposure: Exposure) -> li.Box:
    """Return the image's box in the parent (detector) pixel frame."""
    height, width = exposure.shape
    x0, y0 = exposure.xy0
    return li.Box.factory[y0 : y0 + height, x0 : x0 + width]
