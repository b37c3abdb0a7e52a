"""Previews of products: a difference, a triplet, a region's FITS.

The functions the format registry's PNG writers and the cutout faces
(SODA's PNG cutouts, the light curves' strips) call. Each returns the
bytes of a PNG (`recreate.preview.png`), the same bytes for the same
pixels and stretch.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError, ProcessingError
from recreate.exposure import MaskPlanes
from recreate.preview.png import encode_png
from recreate.preview.render import (
    GAP,
    preview_layout,
    render_panel,
    render_strip,
    render_triplet,
)
from recreate.preview.scale import check_stretch

if TYPE_CHECKING:
    from recreate.pipeline.subtract import DifferenceResult

__all__ = [
    "difference_png",
    "fits_to_png",
    "image_png",
    "strip_png",
    "triplet_png",
]


def image_png(
    image: npt.NDArray[np.floating],
    stretch: str = "zscale",
    *,
    mask: npt.NDArray[np.integer] | None = None,
    planes: MaskPlanes | None = None,
) -> bytes:
    """Return the PNG preview of one image (reduced to fit, y up).

    Parameters
    ----------
    image
        The pixel values.
    stretch
        ``zscale`` (IRAF's limits, linear) or ``asinh``.
    mask, planes
        The mask and its plane names: masked pixels tinted, detections
        outlined (`recreate.preview.render`).

    Raises
    ------
    InvalidRequestError
        If the stretch is unknown.
    """
    check_stretch(stretch)
    layout = preview_layout(image.shape)
    return encode_png(
        render_panel(
            image, stretch, mask=mask, planes=planes, factor=layout.factor
        )
    )


def difference_png(result: DifferenceResult, stretch: str = "zscale") -> bytes:
    """Return the PNG preview of a recreated difference image.

    Raises
    ------
    InvalidRequestError
        If the stretch is unknown.
    """
    exposure = result.exposure
    return image_png(
        exposure.image,
        stretch,
        mask=exposure.mask,
        planes=exposure.mask_planes,
    )


def triplet_png(result: DifferenceResult, stretch: str = "zscale") -> bytes:
    """Return science, warped template and difference side by side.

    Raises
    ------
    InvalidRequestError
        If the stretch is unknown.
    ProcessingError
        If the result does not carry its science image.
    """
    check_stretch(stretch)
    if result.science is None or result.template is None:
        raise ProcessingError(
            "this recreation kept no science or template image: no "
            "triplet preview"
        )
    exposure = result.exposure
    height, width = exposure.shape
    warped = result.template.exposure.image
    border_y = (warped.shape[0] - height) // 2
    border_x = (warped.shape[1] - width) // 2
    template = warped[
        border_y : border_y + height, border_x : border_x + width
    ]
    return encode_png(
        render_triplet(
            result.science.image,
            template,
            exposure.image,
            stretch,
            mask=exposure.mask,
            planes=exposure.mask_planes,
        )
    )


def fits_to_png(data: bytes, stretch: str = "zscale") -> bytes:
    """Return the PNG preview of a FITS file's image (a region's bytes).

    A file in the DP1 layout (a region of `workers.regions`, a cutout)
    is shown with its mask: tints and detection outlines. Any other
    FITS file is shown from its first image HDU, without a mask.

    Parameters
    ----------
    data
        The FITS file's bytes.
    stretch
        ``zscale`` or ``asinh``.

    Raises
    ------
    InvalidRequestError
        If the stretch is unknown.
    FormatError
        If the bytes are not FITS or hold no 2-D image.
    """
    check_stretch(stretch)
    image, mask, planes = _fits_image(data)
    return image_png(image, stretch, mask=mask, planes=planes)


def strip_png(
    files: Sequence[bytes], side: int, stretch: str = "zscale"
) -> bytes:
    """Return FITS images side by side: a light curve's stamps.

    Each file (a region in the DP1 layout, or any FITS image) is shown
    as `fits_to_png` shows it, with its own limits, centred in a
    ``side`` x ``side`` tile (reduced by block means as a preview of
    that size would be); the tiles are `GAP` pixels apart.

    Raises
    ------
    InvalidRequestError
        If the stretch is unknown.
    FormatError
        If a file is not FITS or holds no 2-D image.
    """
    check_stretch(stretch)
    factor = preview_layout((side, side)).factor
    panels = []
    for data in files:
        image, mask, planes = _fits_image(data)
        panels.append(
            render_panel(
                image, stretch, mask=mask, planes=planes, factor=factor
            )
        )
    return encode_png(render_strip(panels, -(-side // factor), GAP))


def _fits_image(
    data: bytes,
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.integer] | None,
    MaskPlanes | None,
]:
    """Return a FITS file's image, and its mask and planes if it has one.

    Raises
    ------
    FormatError
        If the bytes are not FITS or hold no 2-D image.
    """
    try:
        hdulist = fits.open(io.BytesIO(data), memmap=False)
    except OSError as error:
        raise FormatError(f"not a FITS file ({error})") from None
    with hdulist:
        if "IMAGE" in hdulist and "MASK" in hdulist:
            mask_hdu = hdulist["MASK"]
            return (
                np.asarray(hdulist["IMAGE"].data, dtype=np.float32),
                np.asarray(mask_hdu.data),
                MaskPlanes.from_header(mask_hdu.header),
            )
        for hdu in hdulist:
            if hdu.is_image and hdu.data is not None and hdu.data.ndim == 2:
                return np.asarray(hdu.data, np.float32), None, None
    raise FormatError("the FITS file holds no 2-D image")
