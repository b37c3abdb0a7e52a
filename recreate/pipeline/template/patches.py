"""Select the template patches a science image needs, and check them.

Part of `recreate.pipeline.template.build` (GetTemplateTask's
``getExposures`` and ``_checkInputs``): a patch is used when its outer
box, mapped through patch WCS -> sky -> science WCS, overlaps the
science bounding box; the patches must share band and photometric
calibration, and their mask planes are brought onto one set of bits.

A patch may come whole or as a `PatchCutout`: only the pixels the
template can use (`recreate.pipeline.template.tracts.patch_read_box`),
with the whole patch's `PatchFrame`. Every geometric decision (which
patches overlap, their outlines, the tract region, the pixel scale) is
taken on the whole patch's frame, with the very WCS read from its file,
so a template stitched from cut-outs is bit-identical to one stitched
from whole patches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

from recreate.errors import FormatError
from recreate.exposure import Exposure, MaskPlanes

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class PatchFrame:
    """The pixel frame of a whole template patch, as its file gives it.

    Parameters
    ----------
    wcs
        WCS of the whole patch's array pixels, as `recreate.io.read_dp1`
        reads it.
    xy0
        Origin of the whole patch in its tract's pixel frame.
    shape
        Array shape of the whole patch.
    """

    wcs: WCS
    xy0: tuple[int, int]
    shape: tuple[int, int]

    def outline(self) -> Exposure:
        """Return the whole patch as an Exposure without pixels.

        Its planes are zero-stride views of a single zero, which take no
        memory, so that `Exposure.corners_sky` and `Exposure.pixel_scale`
        run on it exactly as on the whole patch: same WCS, same shape,
        same arithmetic, same bits.
        """
        zero = np.broadcast_to(np.float32(0.0), self.shape)
        return Exposure(
            image=zero,
            variance=zero,
            mask=np.broadcast_to(np.int32(0), self.shape),
            wcs=self.wcs,
            xy0=self.xy0,
        )


@dataclass(eq=False, kw_only=True)
class PatchCutout(Exposure):
    """The part of a template patch that a science image can use.

    An `Exposure` like any other (its WCS maps its own array pixels,
    ``xy0`` is its origin in the tract frame) that also carries the
    whole patch's frame, on which `recreate.pipeline.template.build` takes its
    geometric decisions.

    Parameters
    ----------
    frame
        The whole patch's frame; the cut-out must lie inside it.

    Raises
    ------
    FormatError
        If the cut-out's pixels are not all inside the frame.
    """

    frame: PatchFrame

    def __post_init__(self) -> None:
        """Check the planes, and that the cut-out lies inside its frame."""
        super().__post_init__()
        (x0, y0), (height, width) = self.xy0, self.shape
        (fx0, fy0), (fheight, fwidth) = self.frame.xy0, self.frame.shape
        inside = (
            fx0 <= x0
            and fy0 <= y0
            and x0 + width <= fx0 + fwidth
            and y0 + height <= fy0 + fheight
        )
        if not inside:
            raise FormatError(
                f"patch cut-out at xy0={self.xy0} of shape {self.shape} "
                f"leaves its patch at xy0={self.frame.xy0} of shape "
                f"{self.frame.shape}"
            )

    @classmethod
    def of(cls, cutout: Exposure, frame: PatchFrame) -> PatchCutout:
        """Return ``cutout`` (planes, WCS, metadata...) with its frame."""
        values = {f.name: getattr(cutout, f.name) for f in fields(Exposure)}
        return cls(**values, frame=frame)


def patch_geometry(patch: Exposure) -> Exposure:
    """Return what the template's geometry is computed on for a patch.

    The patch itself when whole; the whole patch's pixel-less outline
    (`PatchFrame.outline`) for a `PatchCutout`.
    """
    if isinstance(patch, PatchCutout):
        return patch.frame.outline()
    return patch


@dataclass(frozen=True)
class _Patch:
    """An overlapping input patch and what is derived from it."""

    index: int  # position in the caller's sequence
    exposure: Exposure  # the pixels: the whole patch or a cut-out
    geometry: Exposure  # the whole patch, for WCS, xy0 and shape
    overlap: float  # science pixels its outer box covers

    @property
    def tract(self) -> int | None:
        """Return the tract number, when known."""
        obs = self.exposure.observation
        return None if obs is None else obs.tract

    def sort_key(self) -> tuple[int, int, int, int]:
        """Order patches by (tract, patch), unknown ones last as given."""
        obs = self.exposure.observation
        if obs is None or obs.tract is None:
            return (1, 0, 0, self.index)
        patch = -1 if obs.patch is None else obs.patch
        return (0, obs.tract, patch, self.index)


def _patch_polygon(patch: Exposure, science_wcs: WCS) -> FloatArray:
    """Return a patch's outer box corners in science array pixels.

    Raises
    ------
    FormatError
        If the patch has no WCS.
    """
    ra, dec = patch.corners_sky().T
    # quiet: corners far off the detector may not converge exactly under
    # SIP; the best estimate is good enough for an outline.
    x, y = science_wcs.all_world2pix(ra, dec, 0, quiet=True)
    return np.column_stack([x, y]).astype(np.float64)


def _overlapping(
    patches: Sequence[Exposure],
    geometries: Sequence[Exposure],
    bounds: Sequence[FloatArray],
    shape: tuple[int, int],
) -> list[_Patch]:
    """Return the patches whose outer box overlaps the science box."""
    box = _box_corners(shape)
    used = []
    for index, (patch, geometry, polygon) in enumerate(
        zip(patches, geometries, bounds, strict=True)
    ):
        area = _polygon_area(_clip_to_box(polygon, box))
        if area > 0.0:
            used.append(_Patch(index, patch, geometry, area))
    return sorted(used, key=_Patch.sort_key)


def _box_corners(shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """Return ``(xmin, ymin, xmax, ymax)`` of an array's outer edges."""
    height, width = shape
    return (-0.5, -0.5, width - 0.5, height - 0.5)


def _clip_to_box(
    polygon: FloatArray, box: tuple[float, float, float, float]
) -> FloatArray:
    """Clip a polygon to a box (Sutherland-Hodgman)."""
    xmin, ymin, xmax, ymax = box
    edges = ((0, xmin, 1.0), (0, xmax, -1.0), (1, ymin, 1.0), (1, ymax, -1.0))
    points = np.asarray(polygon, np.float64)
    for axis, limit, sign in edges:
        if len(points) == 0:
            break
        points = _clip_half_plane(points, axis, limit, sign)
    return points


def _clip_half_plane(
    points: FloatArray, axis: int, limit: float, sign: float
) -> FloatArray:
    """Keep the part of a polygon where ``sign * (p[axis] - limit) >= 0``."""
    kept: list[FloatArray] = []
    inside = sign * (points[:, axis] - limit) >= 0.0
    for k in range(len(points)):
        here, there = points[k], points[(k + 1) % len(points)]
        if inside[k]:
            kept.append(here)
        if inside[k] != inside[(k + 1) % len(points)]:
            t = (limit - here[axis]) / (there[axis] - here[axis])
            kept.append(here + t * (there - here))
    return np.array(kept, np.float64).reshape(-1, 2)


def _polygon_area(points: FloatArray) -> float:
    """Return a polygon's area (shoelace); 0 for fewer than 3 points."""
    if len(points) < 3:
        return 0.0
    x, y = points[:, 0], points[:, 1]
    twice = np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))
    return float(abs(twice)) / 2.0


def _check_consistent(patches: Sequence[Exposure]) -> None:
    """Check that patches share band and photometric calibration.

    v29's ``_checkInputs`` refuses a mix; the template takes the first.

    Raises
    ------
    FormatError
        If two patches differ in band or calibration.
    """
    bands = {p.observation.band for p in patches if p.observation}
    if len(bands) > 1:
        raise FormatError(f"template patches mix bands {sorted(bands)}")
    calibs = {p.photo_calib for p in patches}
    if len(calibs) > 1:
        raise FormatError(
            "template patches have different photometric calibrations: "
            + ", ".join(sorted(str(c) for c in calibs))
        )


def _common_planes(patches: Sequence[Exposure]) -> MaskPlanes:
    """Return the first patch's planes plus any others' and ``NO_DATA``."""
    planes = patches[0].mask_planes
    extra = [n for p in patches for n in p.mask_planes.names]
    return planes.with_planes(*extra, "NO_DATA")


def _remap_mask(
    mask: npt.NDArray[np.int32], source: MaskPlanes, target: MaskPlanes
) -> npt.NDArray[np.int32]:
    """Return ``mask`` with each plane moved to its bit in ``target``."""
    moves = {
        source.bit(name): target.bit(name)
        for name in source.names
        if source.bit(name) != target.bit(name)
    }
    if not moves:
        return mask
    kept = ~np.int64(sum(1 << bit for bit in moves))
    out = mask.astype(np.int64) & kept
    for old, new in moves.items():
        out |= ((mask.astype(np.int64) >> old) & 1) << new
    return out.astype(np.uint32).view(np.int32)
