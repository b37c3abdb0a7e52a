"""Previews of products: a difference, a triplet, a region's FITS.

The functions the format registry's PNG writers and the cutout faces
call. Each returns the bytes of a PNG (`recreate.preview.png`), the same
bytes for the same pixels and stretch.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError, ProcessingError
from recreate.exposure import MaskPlanes
from recreate.preview.png import encode_png
from recreate.preview.render import (
    preview_layout,
    render_panel,
    render_triplet,
)
from recreate.preview.scale import check_stretch

if TYPE_CHECKING:
    from recreate.pipeline.subtract import DifferenceResult

__all__ = [
    "difference_png",
    "fits_to_png",
    "image_png",
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
    if result.science is None:
        raise ProcessingError(
            "this recreation kept no science image: no triplet preview"
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
    try:
        hdulist = fits.open(io.BytesIO(data), memmap=False)
    except OSError as error:
        raise FormatError(f"not a FITS file ({error})") from None
    with hdulist:
        if "IMAGE" in hdulist and "MASK" in hdulist:
            mask_hdu = hdulist["MASK"]
            return image_png(
                np.asarray(hdulist["IMAGE"].data, dtype=np.float32),
                stretch,
                mask=np.asarray(mask_hdu.data),
                planes=MaskPlanes.from_header(mask_hdu.header),
            )
        for hdu in hdulist:
            if hdu.is_image and hdu.data is not None and hdu.data.ndim == 2:
                return image_png(np.asarray(hdu.data, np.float32), stretch)
    raise FormatError("the FITS file holds no 2-D image")
