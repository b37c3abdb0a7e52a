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
   (`recreate.pipeline.template.warp`).
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

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS, Sip

from recreate.errors import InvalidRequestError, NoOverlapError
from recreate.exposure import (
    Exposure,
    MaskPlanes,
    ObservationInfo,
    PhotoCalib,
    PsfInfo,
)
from recreate.pipeline.config import TemplateConfig
from recreate.pipeline.template.high_variance import (
    HighVarianceLevels,
    flag_high_variance,
    high_variance_levels,
)
from recreate.pipeline.template.lanczos import LANCZOS_ORDER
from recreate.pipeline.template.patches import (
    _check_consistent,
    _common_planes,
    _overlapping,
    _Patch,
    _patch_polygon,
    patch_geometry,
)
from recreate.pipeline.template.tracts import (
    _grown_shape,
    _tract_groups,
    _warp_tract,
)
from recreate.pipeline.template.warp import Planes, count_flagged, merge_warped


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
    high_variance
        What the HIGH_VARIANCE plane needs of the whole template (v30);
        None when the recipe has no such plane.
    """

    exposure: Exposure
    coverage: float
    psf_fwhm: float | None
    patch_bounds: tuple[npt.NDArray[np.float64], ...]
    warnings: tuple[str, ...]
    high_variance: HighVarianceLevels | None = None


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
        image are left out. A patch may be a
        `~recreate.pipeline.template.patches.PatchCutout` holding only
        the pixels `~recreate.pipeline.template.tracts.patch_read_box`
        names: the result is bit-identical to the whole patch's.
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
    return finish_template(merge_template(science, patches, config), config)


@dataclass(frozen=True, eq=False)
class MergedTemplate:
    """A template warped and merged, before its last steps.

    `merge_template` makes it; `finish_template` adds the HIGH_VARIANCE
    plane (v30), the coverage and the PSF size. Its image and variance
    are the template's: statistics that ignore HIGH_VARIANCE (v29's and
    v30's ScaleVariance) may be taken on it while it is finished.

    Attributes
    ----------
    science
        The science exposure it is on (grown by the border).
    planes, mask_planes
        The merged image, variance and mask, and the mask's planes.
    used, contributed, bounds
        The patches used, the science pixels each covers, and every
        input patch's outline (as `WarpedTemplate.patch_bounds`).
    """

    science: Exposure
    planes: Planes
    mask_planes: MaskPlanes
    used: Sequence[_Patch]
    contributed: dict[int, int]
    bounds: tuple[npt.NDArray[np.float64], ...]


def merge_template(
    science: Exposure,
    patches: Sequence[Exposure],
    config: TemplateConfig,
) -> MergedTemplate:
    """Warp the overlapping patches and merge them (`build_template`).

    Raises
    ------
    NoOverlapError, FormatError, InvalidRequestError
        As `build_template`.
    """
    _check_kernel(config.warping_kernel)
    wcs = science.require_wcs()
    # Cut-outs are placed by their own xy0, but everything geometric is
    # computed on the whole patch (see template_patches).
    geometries = [patch_geometry(p) for p in patches]
    bounds = tuple(_patch_polygon(g, wcs) for g in geometries)
    used = _overlapping(patches, geometries, bounds, science.shape)
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
    if not warped:
        raise NoOverlapError(_coverage_message(0.0, science, config))
    merged = merge_warped(warped, planes.value("NO_DATA"))
    return MergedTemplate(science, merged, planes, used, contributed, bounds)


def finish_template(
    merged: MergedTemplate, config: TemplateConfig
) -> WarpedTemplate:
    """Add HIGH_VARIANCE, measure coverage and PSF size (`build_template`).

    Raises
    ------
    NoOverlapError
        If the template covers less than ``config.required_fraction``.
    """
    science, planes = merged.science, merged.mask_planes
    no_data = planes.value("NO_DATA")
    template = merged.planes
    levels = None
    if config.high_variance is not None:
        levels, flagged = high_variance_levels(
            template.variance, template.mask, planes, config.high_variance
        )
        mask, planes = flag_high_variance(template.mask, planes, flagged)
        template = Planes(template.image, template.variance, mask)
    coverage = _coverage(
        template.mask,
        config.border,
        no_data,
        _science_no_data(science, config),
    )
    warnings = _check_coverage(coverage, science, config)
    psf_fwhm = _psf_fwhm(merged.used, merged.contributed, science)
    exposure = _template_exposure(
        science, template, planes, merged.used, psf_fwhm, config.border
    )
    return WarpedTemplate(
        exposure, coverage, psf_fwhm, merged.bounds, warnings, levels
    )


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


def _who(science: Exposure) -> str:
    """Name the science image for messages: visit and detector if known."""
    obs = science.observation
    if obs is not None and obs.visit is not None and obs.detector is not None:
        return f"visit {obs.visit} detector {obs.detector}"
    return "the science image"


def _coverage(
    mask: npt.NDArray[np.int32],
    border: int,
    no_data: int,
    science_no_data: npt.NDArray[np.bool_] | None = None,
) -> float:
    """Return the fraction of the science box (no border) with data.

    With ``science_no_data`` (v30), a pixel the science image has no
    data for counts as uncovered too.
    """
    height, width = mask.shape
    inner = mask[border : height - border, border : width - border]
    if inner.size == 0:
        return 0.0
    if science_no_data is None:
        missing = count_flagged(inner, no_data)
    else:
        missing = int(
            np.count_nonzero(((inner & no_data) != 0) | science_no_data)
        )
    return float(1.0 - missing / inner.size)


def _science_no_data(
    science: Exposure, config: TemplateConfig
) -> npt.NDArray[np.bool_] | None:
    """Return the science NO_DATA pixels if the coverage counts them."""
    if not config.coverage_counts_science_no_data:
        return None
    planes = science.mask_planes
    if "NO_DATA" not in planes:
        return np.zeros(science.shape, dtype=np.bool_)
    return (science.mask & np.int32(planes.value("NO_DATA"))) != 0


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
        ratio = patch.geometry.pixel_scale() / science_scale
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
