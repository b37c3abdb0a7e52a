"""GetTemplateTask: warp and stitch template patches onto a science grid.

This reproduces ``lsst.ip.diffim.GetTemplateTask`` of pipelines v29 (the
version that made DP1), see ``shared/rubin-recipe.md`` section 1.1:

1. Keep the patches whose outer box, mapped through patch WCS -> sky ->
   science WCS, overlaps the science bounding box (``getExposures``).
2. Per tract, merge the patches on the tract pixel grid with weights
   ``variance**-0.5`` (``_merge``), over just the part of the tract that
   maps onto the science grid grown by ``border`` pixels, plus 5 px.
3. Warp the merged tract image onto the grown science grid with afw's
   Warper defaults: ``lanczos3`` for image and variance, ``bilinear``
   for the mask, the WCS interpolated every ``interp_length`` pixels
   (`recreate.pipeline.warp`).
4. Merge the warped tracts with the same weights.

Where the template has no data
------------------------------
A template pixel is ``NO_DATA``, with image NaN and variance +inf,
exactly when in every tract one of these holds:

* its 6x6 Lanczos footprint leaves the merged tract region, which ends
  at the patches' union box: an afw edge pixel. At the outer edge of the
  patches ``NO_DATA`` therefore reaches up to 3 px into the data;
* the 2x2 source pixels with non-zero bilinear weight touch a pixel no
  patch has data for (afw warps the mask bilinearly). Around holes inside
  the patches ``NO_DATA`` grows by at most 1 px.

A pixel whose 6x6 footprint touches a hole but whose 2x2 does not keeps
a finite value, summed with zeros for the hole, exactly as v29: its merge
leaves 0 there, so afw never sees NaN. The other mask bits of a
``NO_DATA`` pixel are dropped, as v29's merge drops them. v29 itself
leaves image 0 and variance 0 in ``NO_DATA`` pixels; a caller that
convolves the template should fill them with 0 to reproduce v29.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS, Sip

from recreate.errors import FormatError, InvalidRequestError, NoOverlapError
from recreate.exposure import (
    Exposure,
    MaskPlanes,
    ObservationInfo,
    PhotoCalib,
    PsfInfo,
)
from recreate.pipeline.config import TemplateConfig
from recreate.pipeline.warp import (
    LANCZOS_ORDER,
    MAX_MERGE_INPUTS,
    CoarseMap,
    PlacedPlanes,
    Planes,
    count_flagged,
    merge_patches,
    merge_warped,
    warp_planes,
)

FloatArray = npt.NDArray[np.float64]

#: v29 grows the tract region it merges by this much, "to ensure we catch
#: all relevant input pixels" (``warpedBox.grow(5)``).
REGION_MARGIN = 5

#: afw's Warper default ``growFullMask``: these planes are taken from the
#: whole Lanczos footprint instead of the 2x2 bilinear one.
GROW_FULL_MASK_PLANES = ("EDGE",)

#: How far (pixels) two patches of a tract may disagree on the tract WCS.
WCS_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class WarpedTemplate:
    """A template warped onto a science image's grid, grown by a border.

    Parameters
    ----------
    exposure
        The template on the science grid grown by ``border`` pixels on
        every side: shape ``(H + 2b, W + 2b)``, ``xy0`` the science
        ``xy0`` minus ``(b, b)``, WCS the science WCS shifted by ``b``.
        The mask planes are the patches'. Where no patch has data: image
        NaN, variance +inf, mask ``NO_DATA``.
    coverage
        Fraction of the science bounding box (not the border) with data.
    psf_fwhm
        Template PSF FWHM in science pixels: each patch's FWHM scaled by
        its pixel scale over the science one, averaged with weights the
        science pixels the patch covers; None if no patch has a PSF.
    patch_bounds
        Per input patch, in input order, its outer box as an ``(4, 2)``
        array of ``(x, y)`` science array pixels, counter-clockwise.
    warnings
        Things worth telling the user, e.g. a low coverage.
    """

    exposure: Exposure
    coverage: float
    psf_fwhm: float | None
    patch_bounds: tuple[npt.NDArray[np.float64], ...]
    warnings: tuple[str, ...]


class _Box(NamedTuple):
    """An integer pixel box: origin and size."""

    x0: int
    y0: int
    width: int
    height: int

    def intersection(self, other: _Box) -> _Box:
        """Return the overlap of two boxes (possibly empty)."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1 = min(self.x0 + self.width, other.x0 + other.width)
        y1 = min(self.y0 + self.height, other.y0 + other.height)
        return _Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    @property
    def empty(self) -> bool:
        """Say whether the box holds no pixel."""
        return self.width <= 0 or self.height <= 0


@dataclass(frozen=True)
class _Patch:
    """An overlapping input patch and what is derived from it."""

    index: int  # position in the caller's sequence
    exposure: Exposure
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


def build_template(
    science: Exposure,
    patches: Sequence[Exposure],
    config: TemplateConfig = TemplateConfig(),  # noqa: B008 - frozen
) -> WarpedTemplate:
    """Warp and stitch template patches onto a science image's grid.

    Parameters
    ----------
    science
        The science exposure; only its shape, ``xy0``, WCS and
        observation are used.
    patches
        Candidate template patches, each with its own WCS and ``xy0`` in
        its tract's pixel frame. Those that do not overlap the science
        image are left out.
    config
        GetTemplateTask parameters.

    Returns
    -------
    template
        The warped template and what is known about it.

    Raises
    ------
    NoOverlapError
        If no patch overlaps the science image, or the template covers
        less than ``config.required_fraction`` of it.
    FormatError
        If an exposure has no WCS, or the patches disagree on the tract
        WCS, the band or the photometric calibration.
    InvalidRequestError
        If ``config.warping_kernel`` is not ``lanczos3``, or the science
        image overlaps more than 16 patches of a tract or 16 tracts.
    """
    _check_kernel(config.warping_kernel)
    wcs = science.require_wcs()
    bounds = tuple(_patch_polygon(p, wcs) for p in patches)
    used = _overlapping(patches, bounds, science.shape)
    if not used:
        raise NoOverlapError(f"no template patch overlaps {_who(science)}")
    _check_consistent([p.exposure for p in used])
    planes = _common_planes([p.exposure for p in used])
    grown = _grown_shape(science.shape, config.border)
    warped: list[Planes] = []
    contributed: dict[int, int] = {}
    for group in _tract_groups(used):
        result = _warp_tract(group, science, grown, planes, config)
        if result is not None:
            warped.append(result[0])
            contributed.update(result[1])
    no_data = planes.value("NO_DATA")
    if not warped:
        raise NoOverlapError(_coverage_message(0.0, science, config))
    merged = merge_warped(warped, no_data)
    coverage = _coverage(merged.mask, config.border, no_data)
    warnings = _check_coverage(coverage, science, config)
    psf_fwhm = _psf_fwhm(used, contributed, science)
    exposure = _template_exposure(
        science, merged, planes, used, psf_fwhm, config.border
    )
    return WarpedTemplate(exposure, coverage, psf_fwhm, bounds, warnings)


# --------------------------------------------------------------------------
# Selection and checks
# --------------------------------------------------------------------------


def _check_kernel(name: str) -> None:
    """Check that the warping kernel is the one implemented, lanczos3.

    Raises
    ------
    InvalidRequestError
        If ``name`` is another kernel.
    """
    if name != f"lanczos{LANCZOS_ORDER}":
        raise InvalidRequestError(
            f"warping kernel {name!r} is not implemented; only "
            f"lanczos{LANCZOS_ORDER}, v29's, is"
        )


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
    bounds: Sequence[FloatArray],
    shape: tuple[int, int],
) -> list[_Patch]:
    """Return the patches whose outer box overlaps the science box."""
    box = _box_corners(shape)
    used = []
    for index, (patch, polygon) in enumerate(
        zip(patches, bounds, strict=True)
    ):
        area = _polygon_area(_clip_to_box(polygon, box))
        if area > 0.0:
            used.append(_Patch(index, patch, area))
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


def _who(science: Exposure) -> str:
    """Name the science image for messages: visit and detector if known."""
    obs = science.observation
    if obs is not None and obs.visit is not None and obs.detector is not None:
        return f"visit {obs.visit} detector {obs.detector}"
    return "the science image"


# --------------------------------------------------------------------------
# Mask planes
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# One tract
# --------------------------------------------------------------------------


def _tract_groups(used: Sequence[_Patch]) -> list[list[_Patch]]:
    """Group sorted patches by tract; a patch with no tract is alone.

    Raises
    ------
    InvalidRequestError
        If a tract has, or the tracts are, more than the merge takes at
        once: far more than any detector-sized image overlaps.
    """
    groups: list[list[_Patch]] = []
    for patch in used:
        same_tract = groups and groups[-1][0].tract == patch.tract
        if same_tract and patch.tract is not None:
            groups[-1].append(patch)
            continue
        groups.append([patch])
    largest = max(len(groups), *(len(g) for g in groups))
    if largest > MAX_MERGE_INPUTS:
        raise InvalidRequestError(
            f"the science image overlaps {len(used)} template patches in "
            f"{len(groups)} tracts; at most {MAX_MERGE_INPUTS} of each fit"
        )
    return groups


def _grown_shape(shape: tuple[int, int], border: int) -> tuple[int, int]:
    """Return the shape of the science grid grown by ``border``."""
    return shape[0] + 2 * border, shape[1] + 2 * border


def _warp_tract(
    group: Sequence[_Patch],
    science: Exposure,
    grown: tuple[int, int],
    planes: MaskPlanes,
    config: TemplateConfig,
) -> tuple[Planes, dict[int, int]] | None:
    """Merge one tract's patches and warp them onto the grown grid.

    Returns
    -------
    result
        The warped planes and the pixels each patch (by input index)
        contributed to the merge; None if the tract adds no data.
    """
    anchor = group[0].exposure
    _check_tract_wcs(group)
    region = _tract_region(anchor, science, config.border)
    region = region.intersection(_union_box([p.exposure for p in group]))
    if region.empty:
        return None
    placed = [_place(p.exposure, region, planes) for p in group]
    no_data = planes.value("NO_DATA")
    merged, counts = merge_patches(
        placed, (region.height, region.width), no_data
    )
    if not counts.any():
        return None
    coarse = CoarseMap.build(
        grown,
        _DestToTract(science, anchor, region, config.border),
        config.interp_length,
    )
    grow_bits = planes.value_of_present(GROW_FULL_MASK_PLANES)
    warped = warp_planes(merged, coarse, no_data=no_data, grow_bits=grow_bits)
    if count_flagged(warped.mask, no_data) == warped.mask.size:
        return None
    contributed = {p.index: int(n) for p, n in zip(group, counts, strict=True)}
    return warped, contributed


def _check_tract_wcs(group: Sequence[_Patch]) -> None:
    """Check that a tract's patches agree on the tract WCS.

    Merging places patches by ``xy0`` alone, which is right only if each
    patch WCS is the tract WCS shifted by its ``xy0``.

    Raises
    ------
    FormatError
        If a patch's pixels land elsewhere on the sky than its ``xy0``
        says.
    """
    anchor = group[0].exposure
    anchor_wcs = anchor.require_wcs()
    for patch in group[1:]:
        exposure = patch.exposure
        height, width = exposure.shape
        xs = np.array([0.0, width - 1.0])
        ys = np.array([0.0, height - 1.0])
        ra, dec = exposure.require_wcs().pixel_to_world_values(xs, ys)
        ax, ay = anchor_wcs.world_to_pixel_values(ra, dec)
        dx = ax - xs - (exposure.xy0[0] - anchor.xy0[0])
        dy = ay - ys - (exposure.xy0[1] - anchor.xy0[1])
        if np.max(np.hypot(dx, dy)) > WCS_TOLERANCE:
            raise FormatError(
                f"template patches {group[0].index} and {patch.index} of "
                f"tract {patch.tract} disagree on the tract WCS"
            )


def _tract_region(anchor: Exposure, science: Exposure, border: int) -> _Box:
    """Return the tract pixels the grown science box maps onto.

    v29's ``computeWarpedBBox``: the grown box's corners mapped into the
    tract frame, expanded to whole pixels, then grown by 5 px.
    """
    height, width = _grown_shape(science.shape, border)
    xs = np.array([-0.5, width - 0.5, width - 0.5, -0.5]) - border
    ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5]) - border
    ra, dec = science.require_wcs().pixel_to_world_values(xs, ys)
    tx, ty = anchor.require_wcs().world_to_pixel_values(ra, dec)
    tx = np.asarray(tx) + anchor.xy0[0]
    ty = np.asarray(ty) + anchor.xy0[1]
    # afw's Box2I(Box2D, EXPAND): every pixel the float box touches.
    x0 = int(np.floor(tx.min() + 0.5)) - REGION_MARGIN
    y0 = int(np.floor(ty.min() + 0.5)) - REGION_MARGIN
    x1 = int(np.ceil(tx.max() - 0.5)) + REGION_MARGIN
    y1 = int(np.ceil(ty.max() - 0.5)) + REGION_MARGIN
    return _Box(x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def _union_box(exposures: Sequence[Exposure]) -> _Box:
    """Return the smallest box holding every exposure, parent pixels."""
    x0 = min(e.xy0[0] for e in exposures)
    y0 = min(e.xy0[1] for e in exposures)
    x1 = max(e.xy0[0] + e.shape[1] for e in exposures)
    y1 = max(e.xy0[1] + e.shape[0] for e in exposures)
    return _Box(x0, y0, x1 - x0, y1 - y0)


def _place(patch: Exposure, region: _Box, planes: MaskPlanes) -> PlacedPlanes:
    """Return a patch's planes, on ``planes``' bits, placed on ``region``."""
    mask = _remap_mask(patch.mask, patch.mask_planes, planes)
    return PlacedPlanes(
        Planes(patch.image, patch.variance, mask),
        patch.xy0[0] - region.x0,
        patch.xy0[1] - region.y0,
    )


class _DestToTract:
    """Map grown-grid array pixels to tract-region array pixels."""

    def __init__(
        self, science: Exposure, anchor: Exposure, region: _Box, border: int
    ) -> None:
        """Hold the two WCSs and the offsets between the frames."""
        self._science = science.require_wcs()
        self._anchor = anchor.require_wcs()
        self._border = border
        self._shift = (anchor.xy0[0] - region.x0, anchor.xy0[1] - region.y0)

    def __call__(
        self, x: FloatArray, y: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Return the tract-region pixels of grown-grid pixels."""
        ra, dec = self._science.pixel_to_world_values(
            x - self._border, y - self._border
        )
        tx, ty = self._anchor.world_to_pixel_values(ra, dec)
        return (
            np.asarray(tx, np.float64) + self._shift[0],
            np.asarray(ty, np.float64) + self._shift[1],
        )


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def _coverage(mask: npt.NDArray[np.int32], border: int, no_data: int) -> float:
    """Return the fraction of the science box (no border) with data."""
    height, width = mask.shape
    inner = mask[border : height - border, border : width - border]
    if inner.size == 0:
        return 0.0
    missing = count_flagged(inner, no_data)
    return float(1.0 - missing / inner.size)


def _coverage_message(
    coverage: float, science: Exposure, config: TemplateConfig
) -> str:
    """Say how much of the science image the template covers."""
    return (
        f"template covers {100.0 * coverage:.1f}% of {_who(science)}; "
        f"need >= {100.0 * config.required_fraction:g}%"
    )


def _check_coverage(
    coverage: float, science: Exposure, config: TemplateConfig
) -> tuple[str, ...]:
    """Raise below the required coverage; warn below the expected one.

    Raises
    ------
    NoOverlapError
        If ``coverage < config.required_fraction``.
    """
    if coverage < config.required_fraction:
        raise NoOverlapError(_coverage_message(coverage, science, config))
    if coverage < config.expected_success_fraction:
        warning = (
            f"template covers only {100.0 * coverage:.1f}% of "
            f"{_who(science)}; expected >= "
            f"{100.0 * config.expected_success_fraction:g}%"
        )
        return (warning,)
    return ()


def _psf_fwhm(
    used: Sequence[_Patch], contributed: dict[int, int], science: Exposure
) -> float | None:
    """Return the pixel-weighted mean patch FWHM in science pixels.

    Each patch weighs as many science pixels as its outer box covers, if
    it contributed any data at all.
    """
    science_scale = science.pixel_scale()
    total = weight_sum = 0.0
    for patch in used:
        psf = patch.exposure.psf
        if psf is None or contributed.get(patch.index, 0) == 0:
            continue
        ratio = patch.exposure.pixel_scale() / science_scale
        total += patch.overlap * psf.fwhm * ratio
        weight_sum += patch.overlap
    return total / weight_sum if weight_sum > 0.0 else None


def _grown_wcs(wcs: WCS, border: int) -> WCS:
    """Return ``wcs`` for an array grown by ``border`` on every side.

    Array pixel ``p + border`` of the grown array is pixel ``p`` of the
    original. SIP terms carry their own reference pixel, moved too.
    """
    grown = wcs.deepcopy()
    grown.wcs.crpix = grown.wcs.crpix + border
    if wcs.sip is not None:
        grown.sip = Sip(
            wcs.sip.a,
            wcs.sip.b,
            wcs.sip.ap,
            wcs.sip.bp,
            wcs.sip.crpix + border,
        )
    grown.wcs.set()
    return grown


def _template_observation(
    science: Exposure, used: Sequence[_Patch]
) -> ObservationInfo | None:
    """Describe the template as v29 labels it: the science visit's."""
    obs = science.observation
    patch_obs = next(
        (p.exposure.observation for p in used if p.exposure.observation),
        None,
    )
    if obs is None:
        return patch_obs
    return ObservationInfo(
        instrument=obs.instrument,
        band=patch_obs.band if patch_obs else obs.band,
        physical_filter=obs.physical_filter,
        visit=obs.visit,
        detector=obs.detector,
        detector_name=obs.detector_name,
        day_obs=obs.day_obs,
        skymap=patch_obs.skymap if patch_obs else None,
    )


def _template_exposure(
    science: Exposure,
    merged: Planes,
    planes: MaskPlanes,
    used: Sequence[_Patch],
    psf_fwhm: float | None,
    border: int,
) -> Exposure:
    """Wrap the merged planes as an Exposure on the grown science grid."""
    calib: PhotoCalib = used[0].exposure.photo_calib
    return Exposure(
        image=merged.image,
        variance=merged.variance,
        mask=merged.mask,
        mask_planes=planes,
        wcs=_grown_wcs(science.require_wcs(), border),
        xy0=(science.xy0[0] - border, science.xy0[1] - border),
        psf=None if psf_fwhm is None else PsfInfo(psf_fwhm),
        photo_calib=calib,
        observation=_template_observation(science, used),
    )
