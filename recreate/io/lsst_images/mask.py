"""Our mask planes as ``lsst.images`` mask planes.

Legacy afw plane names are renamed and described as ``lsst.images``
does for legacy difference-image masks; unknown planes keep their names.
"""

from __future__ import annotations

from functools import cache

import lsst.images as li
import numpy as np
import numpy.typing as npt

from recreate.errors import FormatError
from recreate.exposure import MaskPlanes


def _to_mask(
    mask: npt.NDArray[np.int32], planes: MaskPlanes, bbox: li.Box
) -> li.Mask:
    """Return our int32 mask as an ``lsst.images`` mask, planes renamed.

    The planes keep our bit order; each is named and described by
    `lsst_mask_plane`.

    Parameters
    ----------
    mask
        Our int32 mask.
    planes
        Its plane names and bits.
    bbox
        The image's box in the parent frame.

    Returns
    -------
    mask
        The mask, one ``lsst.images`` plane per plane of ours.

    Raises
    ------
    FormatError
        If two planes map to one ``lsst.images`` name, or a bit is set
        that no plane names (it would be lost).
    """
    bits = np.ascontiguousarray(mask).view(np.uint32)
    _check_unnamed_bits(bits, planes)
    new_planes = [lsst_mask_plane(name) for name in planes.names]
    new_names = [plane.name for plane in new_planes]
    if len(set(new_names)) != len(new_names):
        raise FormatError(
            f"mask planes {list(planes.names)} map to repeated "
            f"lsst.images names {new_names}"
        )
    schema = li.MaskSchema(new_planes)
    # Mask.set ORs through a boolean index, about 0.2 s per plane on a
    # full detector; shifting each bit into place is some 20x faster.
    array = np.zeros((*bits.shape, schema.mask_size), dtype=schema.dtype)
    for name, plane in zip(planes.names, new_planes, strict=True):
        target = schema.bit(plane.name)
        flags = ((bits >> np.uint32(planes.bit(name))) & 1).astype(
            schema.dtype
        )
        array[..., target.index] |= flags * target.mask
    return li.Mask(array, schema=schema, bbox=bbox)


def _check_unnamed_bits(
    bits: npt.NDArray[np.uint32], planes: MaskPlanes
) -> None:
    """Check that every set mask bit belongs to a named plane.

    Raises
    ------
    FormatError
        If a set bit names no plane; the message lists the bits.
    """
    named = 0
    for name in planes.names:
        named |= 1 << planes.bit(name)
    stray = int(np.bitwise_or.reduce(bits, axis=None)) & ~named
    if stray:
        unnamed = [bit for bit in range(32) if stray >> bit & 1]
        raise FormatError(f"mask bits {unnamed} are set but name no plane")


def lsst_mask_plane(name: str) -> li.MaskPlane:
    """Return the ``lsst.images`` plane a legacy afw plane becomes.

    Known legacy names are renamed and described as ``lsst.images`` does
    for difference images; a name that is already an ``lsst.images``
    one keeps its description; any other keeps its name.
    """
    legacy, modern = _known_mask_planes()
    if name in legacy:
        return legacy[name]
    if name in modern:
        return modern[name]
    return li.MaskPlane(name, f"Mask plane {name!r} of the afw mask.")


@cache
def _known_mask_planes() -> tuple[
    dict[str, li.MaskPlane], dict[str, li.MaskPlane]
]:
    """Return the legacy-name and new-name maps of known mask planes.

    The difference-image map wins; the optional (injection) and template
    maps add the planes DP1 difference images inherit from templates.
    """
    legacy: dict[str, li.MaskPlane] = {}
    for plane_map in (
        li.get_legacy_template_mask_planes(),
        li.get_legacy_optional_mask_planes(),
        li.get_legacy_difference_image_mask_planes(),
    ):
        legacy.update(plane_map)
    modern = {plane.name: plane for plane in legacy.values()}
    return legacy, modern
