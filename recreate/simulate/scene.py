"""Render one simulated image: a visit-detector or a template patch.

This is the step between the plan (what was observed, where, in what
seeing) and the pixels: it picks the sources that fall on the image,
sets their fluxes for the image's time and band, renders them with
`recreate.simulate.render`, adds detector defects to visits, and wraps
the result as an `Exposure` with its WCS, PSF, calibration and metadata.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.time import Time
from astropy.wcs import WCS

from recreate.exposure import (
    Exposure,
    MaskPlanes,
    ObservationInfo,
    PhotoCalib,
    PsfInfo,
)
from recreate.simulate import defects
from recreate.simulate.calibration import calibration_detected
from recreate.simulate.catalog import (
    KIND_MOVER,
    KIND_TRANSIENT,
    KIND_VARIABLE,
    StaticSky,
    Transients,
    draw_movers,
)
from recreate.simulate.coverage import coverage_mask, detector_corners_sky
from recreate.simulate.instrument import BANDS, INSTRUMENT
from recreate.simulate.placement import (
    Injected,
    on_image,
    static_sources,
    truth_rows,
)
from recreate.simulate.render import (
    NoiseModel,
    PsfModel,
    SourceTable,
    render_image,
)
from recreate.simulate.survey import (
    EXPOSURE_TIME,
    SurveyPlan,
    Visit,
    derive_seed,
)
from recreate.skymap import Tract

#: Radial distortion of the simulated optics (see Camera.detector_wcs).
DISTORTION = 2.0e-4

#: Truth table columns, in order.
TRUTH_COLUMNS = (
    "visit",
    "detector",
    "source_id",
    "kind",
    "ra",
    "dec",
    "x",
    "y",
    "flux",
    "template_flux",
)


@dataclass(frozen=True, eq=False)
class RenderedVisit:
    """A rendered visit-detector, its truth rows and noiseless model.

    ``model`` is the noiseless source image in nJy: benchmarks use it to
    find source-free sky and isolated stars. ``cosmic_rays`` is what the
    cosmic rays did: the charge of those the repair missed stays in the
    image and not in ``model``.
    """

    exposure: Exposure
    truth: list[tuple[object, ...]]
    model: npt.NDArray[np.float32]
    cosmic_rays: defects.CosmicRayTruth | None = None


def visit_wcs(plan: SurveyPlan, visit: Visit, detector: int) -> WCS:
    """Return the WCS of one detector of a visit."""
    return plan.preset.camera.detector_wcs(
        detector, visit.ra, visit.dec, visit.rotation, distortion=DISTORTION
    )


def visit_psf_model(visit: Visit) -> PsfModel:
    """Return the PSF a visit's detectors are rendered with."""
    return PsfModel(
        fwhm=visit.psf.fwhm,
        gradient=visit.psf.gradient,
        curvature=visit.psf.curvature,
        g1=visit.psf.g1,
        g2=visit.psf.g2,
    )


def injected_sources(
    plan: SurveyPlan, sky: StaticSky, transients: Transients, visit: Visit
) -> Injected:
    """Return everything that differs from the template in a visit.

    Source ids: variable stars keep their static-catalogue index;
    transients are numbered from 10^7 and movers from 2x10^7 plus the
    visit's sequence, so ids are unique across the repository.
    """
    variable = np.flatnonzero(sky.variability > 0)
    mover_ra, mover_dec, mover_flux = draw_movers(plan, visit)
    n_tr, n_mv = len(transients.ra), len(mover_ra)
    seq = visit.visit % 100000
    return Injected(
        source_id=np.concatenate(
            [
                variable,
                10_000_000 + np.arange(n_tr),
                20_000_000 + seq * 1000 + np.arange(n_mv),
            ]
        ).astype(np.int64),
        kind=np.array(
            [KIND_VARIABLE] * len(variable)
            + [KIND_TRANSIENT] * n_tr
            + [KIND_MOVER] * n_mv
        ),
        ra=np.concatenate([sky.ra[variable], transients.ra, mover_ra]),
        dec=np.concatenate([sky.dec[variable], transients.dec, mover_dec]),
        flux=np.concatenate(
            [
                sky.flux_at(visit.band, visit.mjd)[variable],
                transients.flux_at(visit.mjd),
                mover_flux,
            ]
        ),
        template_flux=np.concatenate(
            [
                sky.mean_flux(visit.band)[variable],
                np.zeros(n_tr + n_mv),
            ]
        ),
    )


def render_visit_detector(
    plan: SurveyPlan,
    sky: StaticSky,
    transients: Transients,
    visit: Visit,
    detector: int,
) -> RenderedVisit:
    """Render one detector of one visit, with defects and truth.

    Parameters
    ----------
    plan
        The survey plan.
    sky
        Static sources.
    transients
        Transients of the survey.
    visit
        The visit.
    detector
        Detector number.

    Returns
    -------
    rendered
        The exposure (nJy, background-subtracted, as DP1 visit images),
        the truth rows of the injected sources that land on it, the
        noiseless model and the cosmic rays' truth.
    """
    camera = plan.preset.camera
    band = BANDS[visit.band]
    shape = (camera.height, camera.width)
    wcs = visit_wcs(plan, visit, detector)
    injected = injected_sources(plan, sky, transients, visit)
    steady = sky.variability == 0
    static_flux = sky.flux_at(visit.band, visit.mjd)
    # Variable stars are drawn once, from the injected list, at their
    # flux of the moment; steady sources come from the static sky.
    sources = SourceTable.concatenate(
        static_sources(sky, steady, static_flux[steady]),
        SourceTable.stars(injected.ra, injected.dec, injected.flux),
    )
    sources = on_image(sources, wcs, shape, margin=256)
    njy_per_electron = band.njy_per_electron(EXPOSURE_TIME)
    noise = NoiseModel(
        sky_electrons=band.sky_electrons(EXPOSURE_TIME, camera.pixel_scale),
        njy_per_electron=njy_per_electron,
        read_noise=camera.read_noise,
        saturation_electrons=camera.full_well,
    )
    psf = visit_psf_model(visit)
    result = render_image(
        shape,
        wcs,
        sources,
        psf,
        noise,
        seed=derive_seed(plan.seed, "visit", visit.visit, detector),
    )
    image, variance, mask = result.image, result.variance, result.mask
    rng = np.random.default_rng(
        derive_seed(plan.seed, "defects", visit.visit, detector)
    )
    defects.add_bad_columns(image, variance, mask, rng)
    cosmic_rays = defects.add_cosmic_rays(image, variance, mask, rng)
    planes = MaskPlanes.afw_default()
    fwhm_px = psf.fwhm / camera.pixel_scale
    # DP1's visit images carry calibrateImage's DETECTED plane.
    detected = calibration_detected(image, variance, mask, planes, fwhm_px)
    mask[detected] |= np.int32(planes.value("DETECTED"))
    exposure = Exposure(
        image=image,
        variance=variance,
        mask=mask,
        mask_planes=planes,
        wcs=wcs,
        psf=PsfInfo(fwhm=fwhm_px, grid=result.psf_grid),
        photo_calib=PhotoCalib(njy_per_electron=njy_per_electron),
        observation=ObservationInfo(
            instrument=INSTRUMENT,
            band=visit.band,
            physical_filter=visit.physical_filter,
            visit=visit.visit,
            detector=detector,
            detector_name=camera.detector_name(detector),
            day_obs=visit.day_obs,
            exposure_time=EXPOSURE_TIME,
            date_avg=Time(visit.mjd, format="mjd", scale="tai").isot,
            boresight_ra=visit.ra,
            boresight_dec=visit.dec,
            rotation_angle=visit.rotation,
            airmass=1.0 / math.cos(math.radians(30.0)),
        ),
    )
    return RenderedVisit(
        exposure,
        truth_rows(injected, visit, detector, wcs, shape),
        result.model,
        cosmic_rays,
    )


def template_footprints(
    plan: SurveyPlan, band: str
) -> list[npt.NDArray[np.float64]]:
    """Return the sky footprints of every detector of a band's template inputs.

    The template of a patch covers exactly these: `render_template_patch`
    marks NO_DATA outside them.
    """
    camera = plan.preset.camera
    shape = (camera.height, camera.width)
    return [
        detector_corners_sky(visit_wcs(plan, visit, d), shape)
        for visit in plan.template_visits(band)
        for d in camera.detectors
    ]


def render_template_patch(
    plan: SurveyPlan,
    sky: StaticSky,
    band: str,
    tract: Tract,
    patch: int,
    footprints: Sequence[npt.NDArray[np.float64]],
) -> Exposure | None:
    """Render a template coadd patch, NO_DATA where no input covered.

    The template is a deep, sharp, PSF-homogenised stack of the band's
    core visits: rendered once at the stack's depth (``template_inputs``
    30 s visits) with a constant PSF. Pixels that no input visit covered
    are NO_DATA with NaN image and variance, as in afw coadds.

    Returns
    -------
    exposure
        The patch, or None when no input covers any of it.
    """
    geom = plan.skymap.geometry
    shape = (geom.patch_outer, geom.patch_outer)
    wcs = tract.patch_wcs(patch)
    covered = coverage_mask(shape, wcs, footprints)
    if not covered.any():
        return None
    x0, y0, _, _ = tract.patch_outer_bbox(patch)
    model = BANDS[band]
    n_inputs = plan.preset.template_inputs
    sources = template_sources(sky, band, wcs, shape)
    njy_per_electron = model.njy_per_electron(EXPOSURE_TIME * n_inputs)
    sky_electrons = model.sky_electrons(
        EXPOSURE_TIME * n_inputs, geom.pixel_scale
    )
    noise = NoiseModel(
        sky_electrons=sky_electrons,
        njy_per_electron=njy_per_electron,
        read_noise=plan.preset.camera.read_noise * math.sqrt(n_inputs),
        saturation_electrons=None,
    )
    fwhm = plan.template_fwhm[band]
    result = render_image(
        shape,
        wcs,
        sources,
        PsfModel(fwhm=fwhm),
        noise,
        seed=derive_seed(plan.seed, "template", band, tract.tract_id, patch),
    )
    planes = MaskPlanes.afw_default()
    image, variance, mask = result.image, result.variance, result.mask
    image[~covered] = np.nan
    variance[~covered] = np.nan
    mask[~covered] |= planes.value("NO_DATA")
    # A coadd's mask ORs its inputs': DETECTED wherever a visit had it.
    detected = calibration_detected(
        image, variance, mask, planes, fwhm / geom.pixel_scale, n_inputs
    )
    mask[detected] |= np.int32(planes.value("DETECTED"))
    return Exposure(
        image=image,
        variance=variance,
        mask=mask,
        mask_planes=planes,
        wcs=wcs,
        xy0=(x0, y0),
        psf=PsfInfo(fwhm=fwhm / geom.pixel_scale, grid=result.psf_grid),
        photo_calib=PhotoCalib(),
        observation=ObservationInfo(
            instrument=INSTRUMENT,
            band=band,
            skymap=plan.skymap.name,
            tract=tract.tract_id,
            patch=patch,
            exposure_time=EXPOSURE_TIME * n_inputs,
        ),
    )


def template_sources(
    sky: StaticSky, band: str, wcs: WCS, shape: tuple[int, int]
) -> SourceTable:
    """Return the sources a template image of ``band`` is rendered with.

    Every static source at its mean flux in the band, kept where it
    falls within 256 px of the image (its light can reach the pixels).

    Parameters
    ----------
    sky
        Static sources.
    band
        Band of the template.
    wcs
        WCS of the template image.
    shape
        Shape of the template image, ``(height, width)``.

    Returns
    -------
    sources
        The sources, as `render_template_patch` draws them.
    """
    return on_image(
        static_sources(sky, np.ones(len(sky), bool), sky.mean_flux(band)),
        wcs,
        shape,
        margin=256,
    )
