"""Quality scores of a recreated difference image against the truth.

Used by ``bench/diffim.py``: noise in source-free sky, residuals of
bright steady stars, injected transients' fluxes (with the decorrelated
PSF, and with the science PSF the product carries), and 5-sigma
detections that match no injected source.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import galsim
import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS
from scipy import ndimage

from recreate.butler import DiffimInputs
from recreate.exposure import Exposure
from recreate.pipeline.match.decorrelate import decorrelated_psf
from recreate.pipeline.subtract import DifferenceResult
from recreate.simulate.catalog import KIND_TRANSIENT, StaticSky
from recreate.simulate.render.geometry import local_jacobians
from recreate.simulate.render.psf import PsfModel
from recreate.simulate.scene import visit_psf_model, visit_wcs
from recreate.simulate.survey import SurveyPlan, Visit

#: Planes that flag pixels no measurement should trust.
FLAGGED = ("BAD", "SAT", "CR", "INTRP", "NO_DATA", "EDGE", "SAT_TEMPLATE")


@dataclass(frozen=True, eq=False)
class Case:
    """A science image, its patches, and the truth to score against."""

    plan: SurveyPlan
    sky: StaticSky
    science_path: Path
    patch_paths: list[Path]
    truth: list[dict[str, Any]]
    model: npt.NDArray[np.float32]
    detector: int
    found: DiffimInputs
    visit: Visit


def psf_flux(
    image: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    psf: npt.NDArray[np.float64],
    x: float,
    y: float,
) -> tuple[float, float]:
    """Return the PSF-weighted flux and its error at a sub-pixel position.

    The PSF image is shifted to the source's sub-pixel position and the
    flux solved by weighted least squares: F = sum(P D / V) / sum(P^2 / V).
    """
    half = psf.shape[0] // 2
    ix, iy = round(x), round(y)
    shifted = ndimage.shift(psf, (y - iy, x - ix), order=3, mode="constant")
    window = (slice(iy - half, iy + half + 1), slice(ix - half, ix + half + 1))
    data = image[window].astype(np.float64)
    var = variance[window].astype(np.float64)
    if data.shape != psf.shape or not np.all(np.isfinite(data)):
        return math.nan, math.nan
    weight = shifted**2 / var
    flux = float(np.sum(shifted * data / var) / np.sum(weight))
    return flux, float(1.0 / math.sqrt(np.sum(weight)))


def score(case: Case, result: DifferenceResult) -> dict[str, float]:
    """Return the quality figures of a recreated difference image."""
    diff = result.exposure
    flagged = (diff.mask & diff.mask_planes.value_of_present(FLAGGED)) != 0
    sky_sigma = float(np.sqrt(np.median(diff.variance)))
    return {
        **_sky_noise(diff, flagged, case.model, sky_sigma),
        **_star_residuals(case, diff, flagged),
        **_transients(case, result),
        **false_detections(case, diff, flagged),
    }


def _sky_noise(
    diff: Exposure,
    flagged: npt.NDArray[np.bool_],
    model: npt.NDArray[np.float32],
    sky_sigma: float,
) -> dict[str, float]:
    """Robust std of difference / sqrt(variance) where there is no source."""
    blank = (model < 0.02 * sky_sigma) & ~flagged & np.isfinite(diff.image)
    # Grow the source mask a little: wings below the cut still add flux.
    blank &= ~ndimage.binary_dilation(~blank, iterations=3)
    z = diff.image[blank] / np.sqrt(diff.variance[blank])
    q25, q75 = np.percentile(z, [25, 75])
    return {"sky_std": float((q75 - q25) / 1.349), "sky_pixels": float(z.size)}


def _detector_stars(case: Case, diff: Exposure) -> tuple[Any, ...]:
    """Return pixel positions and fluxes of steady stars on the detector."""
    sky = case.sky
    steady = (~sky.is_galaxy) & (sky.variability == 0)
    wcs = diff.require_wcs()
    x, y = wcs.world_to_pixel_values(sky.ra[steady], sky.dec[steady])
    flux = sky.mean_flux("r")[steady]
    height, width = diff.shape
    on = (x > 40) & (x < width - 40) & (y > 40) & (y < height - 40)
    return x[on], y[on], flux[on]


def isolated_stars(
    case: Case,
    diff: Exposure,
    flagged: npt.NDArray[np.bool_],
    low: float,
    high: float,
) -> Iterator[
    tuple[float, float, float, npt.NDArray[np.float64], tuple[slice, slice]]
]:
    """Yield the steady stars of flux in (low, high) that stand alone.

    Each comes as ``(x, y, flux, psf, stamp)``: its PSF from the
    difference image's PSF grid and the stamp of that PSF's size around
    it, with no flagged pixel. None come without a PSF grid.
    """
    x, y, flux = _detector_stars(case, diff)
    if diff.psf is None or diff.psf.grid is None:
        return
    grid = diff.psf.grid
    for xi, yi, fi in zip(x, y, flux, strict=True):
        if not low < fi < high:
            continue
        psf = grid.image_at(xi, yi)
        half = psf.shape[0] // 2
        ix, iy = round(xi), round(yi)
        stamp = (
            slice(iy - half, iy + half + 1),
            slice(ix - half, ix + half + 1),
        )
        if flagged[stamp].any():
            continue
        # Isolated: the model around the star is (almost) the star alone.
        if float(case.model[stamp].sum()) > 1.05 * fi:
            continue
        yield xi, yi, fi, psf, stamp


def _star_residuals(
    case: Case, diff: Exposure, flagged: npt.NDArray[np.bool_]
) -> dict[str, float]:
    """Residual flux of bright isolated steady stars in the difference."""
    fractions, chis = [], []
    # Bright, but below saturation.
    stars = isolated_stars(case, diff, flagged, 3e4, 1e6)
    for xi, yi, fi, psf, _ in stars:
        residual, error = psf_flux(diff.image, diff.variance, psf, xi, yi)
        if math.isfinite(residual):
            fractions.append(abs(residual) / fi)
            chis.append(abs(residual) / error)
    if not chis:
        return {"stars": 0.0}
    return {
        "stars": float(len(chis)),
        "star_residual_median": float(np.median(fractions)),
        "star_chi_p95": float(np.percentile(chis, 95)),
    }


def _transients(case: Case, result: DifferenceResult) -> dict[str, float]:
    """Measured / true flux and pull width of injected transients.

    Fluxes are PSF fits with the difference image's true PSF: the
    simulator's exact PSF at the transient (not the grid's bilinear mix
    of its nodes), filtered by the decorrelation (v29 leaves the science
    PSF attached, which biases PSF fluxes by a percent or two). The fit
    gives the flux inside the PSF stamp, so the truth is compared inside
    the same stamp: a Kolmogorov PSF holds 0.7-0.8% of its light beyond
    20 px, which would read as a -2 sigma bias at S/N 250.
    """
    diff = result.exposure
    ratios, pulls, attached = [], [], []
    height, width = diff.shape
    kernel = result.kernel.kernel_image(width / 2.0, height / 2.0)
    decorrelated = math.isfinite(result.variance_levels[0])
    camera = case.plan.preset.camera
    shape = (camera.height, camera.width)
    model = visit_psf_model(case.visit)
    wcs = visit_wcs(case.plan, case.visit, case.detector)
    for row in case.truth:
        if row["kind"] != KIND_TRANSIENT:
            continue
        science_psf, enclosed = _true_psf(
            model, wcs, shape, row["x"], row["y"]
        )
        psf = science_psf
        if decorrelated:
            psf = decorrelated_psf(psf, kernel, *result.variance_levels)
        flux, error = psf_flux(
            diff.image, diff.variance, psf, row["x"], row["y"]
        )
        true = (row["flux"] - row["template_flux"]) * enclosed
        if not math.isfinite(flux) or true / error < 20:
            continue
        ratios.append(flux / true)
        pulls.append((flux - true) / error)
        # What a user fitting the PSF the product carries (the science
        # PSF, as v29's) reads on the decorrelated difference.
        naive, _ = psf_flux(
            diff.image, diff.variance, science_psf, row["x"], row["y"]
        )
        attached.append(naive / true)
    if not ratios:
        return {"transients": 0.0}
    return {
        "transients": float(len(ratios)),
        "transient_ratio_median": float(np.median(ratios)),
        "transient_pull_std": float(np.std(pulls)),
        "transient_ratio_attached_psf": float(np.median(attached)),
    }


def _true_psf(
    model: PsfModel,
    wcs: WCS,
    shape: tuple[int, int],
    x: float,
    y: float,
    side: int = 41,
) -> tuple[npt.NDArray[np.float64], float]:
    """Return the science PSF at ``(x, y)`` and the light it holds.

    The simulator's own PSF model (``model``, of a detector of ``shape``)
    and local WCS (of ``wcs``), drawn on a stamp of ``side`` centred on
    the nearest pixel (the sub-pixel offset is `psf_flux`'s to apply);
    the image is normalised to unit sum and the fraction of a unit-flux
    source that falls on the stamp is returned beside it.
    """
    fwhm = model.fwhm_at_positions(np.array([x]), np.array([y]), shape)[0]
    jacobian = local_jacobians(wcs, np.array([x]), np.array([y]))[0]
    half = side // 2
    stamp = galsim.ImageD(
        side,
        side,
        xmin=-half,
        ymin=-half,
        wcs=galsim.JacobianWCS(*jacobian.ravel().tolist()),
    )
    model.profile_of_width(float(fwhm)).drawImage(
        image=stamp, center=galsim.PositionD(0.0, 0.0), method="auto"
    )
    image = np.asarray(stamp.array, dtype=np.float64)
    enclosed = float(image.sum())
    return image / enclosed, enclosed


def false_detections(
    case: Case, diff: Exposure, flagged: npt.NDArray[np.bool_]
) -> dict[str, float]:
    """Count 5-sigma footprints that match no injected source."""
    planes = diff.mask_planes
    detected = (diff.mask & planes.value("DETECTED", "DETECTED_NEGATIVE")) != 0
    labels, count = ndimage.label(detected, structure=np.ones((3, 3)))
    if count == 0:
        return {"detections": 0.0, "false_detections": 0.0}
    index = np.arange(1, count + 1)
    cy, cx = np.array(ndimage.center_of_mass(detected, labels, index)).T
    flagged_frac = ndimage.mean(flagged, labels, index)
    truth_xy = np.array([(r["x"], r["y"]) for r in case.truth] or [(1e9, 1e9)])
    radius = 3.0 * (diff.psf.fwhm if diff.psf else 5.0)
    false = 0
    for x, y, frac in zip(cx, cy, flagged_frac, strict=True):
        if frac > 0:
            continue  # flagged pixels: DP1's source filter drops these
        distance = np.hypot(truth_xy[:, 0] - x, truth_xy[:, 1] - y).min()
        false += int(distance > radius)
    flagged_count = int(np.count_nonzero(flagged_frac > 0))
    return {
        "detections": float(count),
        "flagged_detections": float(flagged_count),
        "false_detections": float(false),
    }
