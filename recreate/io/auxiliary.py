"""The variance, weight and mask inputs of a plain image.

Each may be another file or another HDU of the image's own file; see
`recreate.io.plain.read_plain` for how a `Source` is interpreted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import MaskPlanes
from recreate.io.fitsfile import (
    AnyImageHDU,
    is_image_2d,
    open_fits,
    read_array,
)

type Source = str | os.PathLike[str] | int

_INT32 = np.iinfo(np.int32)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def describe_hdu(hdulist: fits.HDUList, hdu: AnyImageHDU) -> str:
    """Return e.g. ``"HDU 2 ('WEIGHT')"`` for messages."""
    index = next(i for i, each in enumerate(hdulist) if each is hdu)
    name = hdu.header.get("EXTNAME")
    return f"HDU {index} ({name!r})" if name else f"HDU {index}"


def _names(hdu: AnyImageHDU) -> set[str]:
    """Return an HDU's EXTNAME and EXTTYPE, upper-cased."""
    values = (hdu.header.get(key) for key in ("EXTNAME", "EXTTYPE"))
    return {v.strip().upper() for v in values if isinstance(v, str)}


def find_named_hdu(
    hdulist: fits.HDUList, name: str, source: str
) -> AnyImageHDU:
    """Return the HDU whose EXTNAME or EXTTYPE is ``name`` (any case).

    Raises
    ------
    FormatError
        If no HDU has that name; the message lists the names there are.
    """
    for hdu in hdulist:
        if name.strip().upper() in _names(hdu):
            return hdu
    present = sorted(set().union(*(_names(hdu) for hdu in hdulist)))
    raise FormatError(
        f"{source}: no HDU named {name!r} (names: {', '.join(present)})"
    )


def read_aux_array(
    spec: Source,
    hdulist: fits.HDUList,
    source: str,
    what: str,
    shape: tuple[int, ...] | None,
) -> tuple[npt.NDArray[Any], fits.Header, str]:
    """Return the pixels and header of an input, and where they came from.

    Parameters
    ----------
    spec
        An HDU index or name of the image file, or another file.
    hdulist
        The image file, open.
    source
        The image file's name, for messages.
    what
        ``"variance"``, ``"weight"`` or ``"mask"``, for messages.
    shape
        The image's shape, which the input must have; None for any
        shape (a PSF image).

    Returns
    -------
    data, header, where
        The pixels, a copy of their header, and a short description
        (``"HDU 'WEIGHT'"`` or ``"file weight.fits"``).

    Raises
    ------
    FileNotFoundError
        If ``spec`` is neither an HDU name of the image file nor a file.
    FormatError
        If the input is not a 2-D image of the image's shape.
    """
    if isinstance(spec, int):
        if not 0 <= spec < len(hdulist):
            raise FormatError(f"{source}: no HDU {spec} for the {what}")
        data, header = _pixels(hdulist[spec], what, source)
        where, origin = f"HDU {spec}", source
    elif isinstance(spec, str) and _is_hdu_name(spec, hdulist):
        hdu = find_named_hdu(hdulist, spec, source)
        data, header = _pixels(hdu, what, source)
        where, origin = f"HDU {spec!r}", source
    else:
        _require_file(spec, source, what)
        with open_fits(spec) as other:
            data, header = _pixels(
                _first_image(other, str(spec)), what, str(spec)
            )
        where, origin = f"file {Path(spec).name}", str(spec)
    if shape is not None and data.shape != shape:
        raise FormatError(
            f"{origin}: {what} shape {data.shape} differs from the image "
            f"shape {shape}"
        )
    return data, header, where


def _is_hdu_name(spec: str, hdulist: fits.HDUList) -> bool:
    """Say whether a str argument names an HDU rather than a file.

    An existing file wins, so a path is never shadowed by an EXTNAME.
    """
    if Path(spec).exists():
        return False
    return any(spec.strip().upper() in _names(hdu) for hdu in hdulist)


def _require_file(
    spec: str | os.PathLike[str], source: str, what: str
) -> None:
    """Raise a message naming both readings of a missing ``spec``."""
    if not Path(spec).is_file():
        raise FileNotFoundError(
            f"{what} {os.fspath(spec)!r}: no such file, and no HDU of "
            f"{source} has that name"
        )


def _first_image(hdulist: fits.HDUList, source: str) -> AnyImageHDU:
    """Return the first 2-D image HDU of a file."""
    for hdu in hdulist:
        if is_image_2d(hdu):
            return hdu
    raise FormatError(f"{source}: no HDU holds a 2-D image")


def _pixels(
    hdu: AnyImageHDU, what: str, source: str
) -> tuple[npt.NDArray[Any], fits.Header]:
    """Return an HDU's pixels and a copy of its header."""
    if not is_image_2d(hdu):
        raise FormatError(f"{source}: the {what} HDU is not a 2-D image")
    return read_array(hdu, what, source), hdu.header.copy()


def read_mask(
    spec: Source | None,
    hdulist: fits.HDUList,
    source: str,
    shape: tuple[int, ...],
    mask_planes: MaskPlanes | None,
) -> tuple[npt.NDArray[np.int32], MaskPlanes]:
    """Return a plain image's mask values and planes (NO_DATA included).

    Parameters
    ----------
    spec
        Where the mask is (see `read_aux_array`), or None for no mask.
    hdulist
        The image file, open.
    source
        The image file's name, for messages.
    shape
        The image's shape.
    mask_planes
        Planes of the mask's values, if the caller knows them.

    Returns
    -------
    mask, planes
        int32 values and their planes: the values as they are with
        ``mask_planes`` or the mask's ``MP_*`` cards, else every nonzero
        value as BAD.

    Raises
    ------
    FileNotFoundError
        If a named file does not exist.
    FormatError
        If the mask is not integer-valued, not of the image's shape, or
        its ``MP_*`` cards are bad.
    """
    planes = (
        mask_planes if mask_planes is not None else MaskPlanes.afw_default()
    )
    if spec is None:
        return np.zeros(shape, dtype=np.int32), planes.with_planes("NO_DATA")
    data, header, where = read_aux_array(spec, hdulist, source, "mask", shape)
    label = f"{source}: mask ({where})"
    values = integer_mask(data, label)
    if mask_planes is None and any(key.startswith("MP_") for key in header):
        try:
            planes = MaskPlanes.from_header(header)
        except FormatError as exc:
            raise FormatError(f"{label}: {exc}") from exc
    elif mask_planes is None:
        # Another survey's bits mean nothing here; keep only "this pixel
        # is flagged", which is what downstream masking needs.
        bad = np.int32(planes.value("BAD"))
        values = np.where(values != 0, bad, np.int32(0)).astype(np.int32)
    return values, planes.with_planes("NO_DATA")


def integer_mask(data: npt.NDArray[Any], label: str) -> npt.NDArray[np.int32]:
    """Return mask values as int32, accepting integral floats and bools.

    Raises
    ------
    FormatError
        If a value is not an integer, or does not fit 32 bits.
    """
    if data.dtype.kind == "u" and data.dtype.itemsize == 4:
        # uint32 masks are int32 masks with bit 31 read as unsigned.
        return data.view(np.int32)
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data) & (data == np.round(data))):
            raise FormatError(f"{label} has non-integer values")
    elif data.dtype.kind not in "biu":
        raise FormatError(f"{label} has dtype {data.dtype}, not integer")
    if data.dtype.kind in "biu" and data.dtype.itemsize < 4:
        return data.astype(np.int32)  # always fits
    if data.size and (data.min() < _INT32.min or data.max() > _INT32.max):
        raise FormatError(f"{label} values do not fit 32 bits")
    return data.astype(np.int32)


def _usable_variance(
    data: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Return a variance as float32, +inf where unusable, and where that is.

    A float32 plane is checked in place (no value can overflow it); any
    other type through float64, where a value may exceed float32.
    """
    if data.dtype == np.float32:
        result = np.array(data, dtype=np.float32)
        unusable = ~(np.isfinite(result) & (result > 0))
    else:
        values = np.asarray(data, dtype=np.float64)
        unusable = ~(
            np.isfinite(values) & (values > 0) & (values <= _FLOAT32_MAX)
        )
        result = values.astype(np.float32)
    result[unusable] = np.inf
    return result, unusable


def read_variance(
    variance: Source | None,
    weight: Source | None,
    hdulist: fits.HDUList,
    source: str,
    shape: tuple[int, ...],
) -> tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.bool_], str]:
    """Return the variance (or None), where it is unusable, and its origin.

    A variance must be positive and finite in float32; a weight must be
    positive and large enough that its inverse is finite in float32.
    Unusable pixels get +inf variance (zero weight).

    Parameters
    ----------
    variance, weight
        Where the variance or the weight is (at most one), or None.
    hdulist
        The image file, open.
    source
        The image file's name, for messages.
    shape
        The image's shape.

    Returns
    -------
    variance, unusable, method
        The float32 variance (None when neither was given), where it is
        unusable, and a short description of where it came from.

    Raises
    ------
    FileNotFoundError
        If a named file does not exist.
    FormatError
        If the input is not a 2-D image of the image's shape.
    """
    if variance is not None:
        data, _, where = read_aux_array(
            variance, hdulist, source, "variance", shape
        )
        result, unusable = _usable_variance(data)
        return result, unusable, f"from variance {where}"
    if weight is not None:
        data, _, where = read_aux_array(
            weight, hdulist, source, "weight", shape
        )
        values = np.asarray(data, dtype=np.float64)
        good = np.isfinite(values) & (values > 1.0 / _FLOAT32_MAX)
        result = np.full(shape, np.inf)
        np.divide(1.0, values, out=result, where=good)
        return result.astype(np.float32), ~good, f"1 / weight {where}"
    return None, np.zeros(shape, dtype=bool), ""
