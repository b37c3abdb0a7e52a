"""Find and read the IMAGE, MASK and VARIANCE planes of an afw-layout file.

Planes are found by EXTTYPE (what afw writes) or EXTNAME (what DP1 adds);
when no HDU carries either label, HDUs 1, 2 and 3 are taken in that
order, as afw writes them. Any other HDU is ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import MaskPlanes
from recreate.io.fitsfile import (
    AnyImageHDU,
    Window,
    hdu_label,
    is_image_2d,
    read_array,
)

PLANES = ("IMAGE", "MASK", "VARIANCE")
_INT32 = np.iinfo(np.int32)


def is_afw_layout(hdulist: fits.HDUList) -> bool:
    """Say whether extensions labelled IMAGE, MASK and VARIANCE all exist."""
    labels = {hdu_label(hdu) for hdu in hdulist[1:]}
    return labels.issuperset(PLANES)


def locate_planes(
    hdulist: fits.HDUList, source: str
) -> dict[str, AnyImageHDU]:
    """Return the IMAGE, MASK and VARIANCE HDUs of an afw-layout file.

    Planes are found by EXTTYPE or EXTNAME; when no HDU carries either
    label, HDUs 1, 2 and 3 are taken in that order, as afw writes them.

    Raises
    ------
    FormatError
        If a plane is missing, or is not a 2-D image.
    """
    found = labelled_planes(hdulist)
    if not found:
        found = _planes_by_position(hdulist, source)
    missing = [plane for plane in PLANES if plane not in found]
    if missing:
        raise FormatError(
            f"{source}: no {' or '.join(missing)} plane (no HDU has "
            f"EXTTYPE or EXTNAME {' or '.join(missing)})"
        )
    for label, hdu in found.items():
        if not is_image_2d(hdu):
            raise FormatError(f"{source}: the {label} HDU is not a 2-D image")
    return found


def labelled_planes(hdulist: fits.HDUList) -> dict[str, Any]:
    """Return the first HDU labelled IMAGE, MASK or VARIANCE, by label.

    Labels are EXTTYPE, else EXTNAME (`hdu_label`); planes without a
    label are missing from the answer.
    """
    found: dict[str, Any] = {}
    for hdu in hdulist[1:]:
        label = hdu_label(hdu)
        if label in PLANES and label not in found:
            found[label] = hdu
    return found


def _planes_by_position(
    hdulist: fits.HDUList, source: str
) -> dict[str, AnyImageHDU]:
    """Return HDUs 1-3 as the planes, if they are three 2-D images."""
    candidates = list(hdulist[1:4])
    if len(candidates) < len(PLANES) or not all(map(is_image_2d, candidates)):
        raise FormatError(
            f"{source}: no IMAGE, MASK and VARIANCE planes: no HDU is "
            "labelled by EXTTYPE/EXTNAME and HDUs 1-3 are not 2-D images"
        )
    return dict(zip(PLANES, candidates, strict=True))


def read_number_plane(
    hdu: AnyImageHDU,
    label: str,
    source: str,
    window: Window | None = None,
) -> npt.NDArray[Any]:
    """Return the pixels of the IMAGE or VARIANCE plane.

    Parameters
    ----------
    hdu
        The plane's HDU.
    label
        ``"IMAGE"`` or ``"VARIANCE"``, for messages.
    source
        The file name, for messages.
    window
        The ``(rows, columns)`` to read (`recreate.io.fitsfile.read_array`);
        None for the whole plane.

    Returns
    -------
    pixels
        Native-endian pixels, in the dtype they are stored as.

    Raises
    ------
    FormatError
        If the pixels cannot be read or are not numbers.
    """
    data = read_array(hdu, f"{label} plane", source, window)
    if data.dtype.kind not in "fiu":
        raise FormatError(f"{source}: {label} plane has dtype {data.dtype}")
    return data


def read_mask_plane(
    hdu: AnyImageHDU, source: str, window: Window | None = None
) -> npt.NDArray[np.int32]:
    """Return the MASK plane as int32, whatever integer type it is stored as.

    Old afw files store int16 masks as unsigned via BZERO = 32768, which
    astropy hands back as uint16; uint32 (BZERO = 2**31) is afw's int32
    with bit 31 as the sign bit, so it is reinterpreted, not converted.

    Parameters
    ----------
    hdu
        The MASK HDU.
    source
        The file name, for messages.
    window
        The ``(rows, columns)`` to read (`recreate.io.fitsfile.read_array`);
        None for the whole plane. Only the window's values are checked.

    Returns
    -------
    mask
        The mask values as int32.

    Raises
    ------
    FormatError
        If the mask cannot be read, is not integer, or exceeds 32 bits.
    """
    data = read_array(hdu, "MASK plane", source, window)
    if data.dtype.kind not in "iu":
        raise FormatError(
            f"{source}: MASK plane has dtype {data.dtype}, not an integer"
        )
    if data.dtype.kind == "u" and data.dtype.itemsize == 4:
        return data.view(np.int32)
    if data.size and (data.min() < _INT32.min or data.max() > _INT32.max):
        raise FormatError(f"{source}: MASK plane values exceed 32 bits")
    return data.astype(np.int32)


def read_mask_planes(header: fits.Header, source: str) -> MaskPlanes:
    """Return the mask planes named by a MASK header's ``MP_*`` cards.

    Parameters
    ----------
    header
        The MASK plane's header.
    source
        The file name, for messages.

    Returns
    -------
    planes
        The planes of the cards. afw writes a card for every plane it
        knows, so a header with none comes from a writer that knew no
        names; afw then falls back to its default plane dictionary when
        reading the mask, and so do we.

    Raises
    ------
    FormatError
        If a card is not a bit in 0-31, or two planes share a bit.
    """
    if not any(key.startswith("MP_") for key in header):
        return MaskPlanes.afw_default()
    try:
        return MaskPlanes.from_header(header)
    except FormatError as exc:
        raise FormatError(f"{source}: MASK plane: {exc}") from exc


def check_shapes(source: str, **planes: npt.NDArray[Any]) -> None:
    """Raise a FormatError naming the shapes unless all planes share one."""
    shapes = {name: plane.shape for name, plane in planes.items()}
    if len(set(shapes.values())) != 1:
        raise FormatError(f"{source}: planes differ in shape: {shapes}")
