"""The difference-imaging benchmark's scores against the simulator's truth.

* robust std of difference / sqrt(variance) in source-free sky;
* residual flux of bright isolated steady stars (fraction, and chi =
  residual / error: pure noise gives a 95th percentile of about 2);
* injected transients' measured / true flux and pull width at S/N > 20,
  with the decorrelated PSF, and the flux a fit of the PSF the product
  carries (the science PSF) reads;
* 5-sigma detections that match no injected source (`diffim_detections`);
* the method's own floor: the same recipe on noiseless inputs, and that
  floor plus Gaussian noise of the variance plane;
* a PSF-only baseline kernel (fitted to the known PSF images).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import galsim
import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS
from diffim_case import FLAGGED, Case
from diffim_detections import false_detections, with_gaussian_noise
from scipy import ndimage

from recreate.exposure import Exposure
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.kernel import fit_kernel
from recreate.pipeline.kernel.solved import SolvedKernel
from recreate.pipeline.match.decorrelate import decorrelated_psf
from recreate.pipeline.sources.detect_and_measure import detect_and_measure
from recreate.pipeline.subtract import DifferenceResult, subtract
from recreate.simulate.catalog import (
    KIND_TRANSIENT,
)
from recreate.simulate.render.draw import draw_model
from recreate.simulate.render.geometry import local_jacobians
from recreate.simulate.render.psf import PsfModel
from recreate.simulate.scene import (
    template_sources,
    visit_psf_model,
    visit_wcs,
)


def noise_free_floor(
    case: Case,
    science: Exposure,
    patches: list[Exposure],
    result: DifferenceResult,
    config: PipelineConfig = DEFAULT_CONFIG,
) -> dict[str, float]:
    """Return what the recipe leaves at stars when there is no noise.

    The noiseless science model (in the planes of ``science``, the
    noisy science image as read) and noiseless template patches (the
    same sources, the same PSFs and WCSs) are subtracted with the kernel
    fitted to the noisy images; what stays is the method's systematic
    residual alone. Its detections are counted with the noisy image's
    variance, so they are the false detections the method makes on its
    own, whatever the noise does. Per bright star, the residual is split
    into flux, shift and width terms (least squares on the star's PSF
    and its derivatives). The same noiseless difference plus Gaussian
    noise of the noisy variance plane gives the reference the noisy
    count is read against (`with_gaussian_noise`).
    """
    quiet_patches = [_noiseless_patch(case, p) for p in patches]
    quiet_science = replace(science, image=case.model.astype(np.float32))
    if science.psf is None:
        msg = "the noise-free floor needs the science PSF"
        raise RuntimeError(msg)
    quiet = subtract(
        quiet_science, quiet_patches, kernel=result.kernel, config=config
    )
    noisy = result.exposure
    diff = replace(quiet.exposure, variance=noisy.variance)
    planes = diff.mask_planes
    mask = diff.mask & ~planes.value("DETECTED", "DETECTED_NEGATIVE")
    # The recipe's own detection step (DP2's backgrounds included), on
    # the noiseless difference with the noisy variance.
    measured = detect_and_measure(
        diff.image,
        noisy.variance,
        mask,
        planes,
        science.psf.fwhm,
        config.subtract,
    )
    flagged = (mask & planes.value_of_present(FLAGGED)) != 0
    counted = false_detections(
        case,
        replace(
            diff,
            image=measured.image,
            mask=measured.mask,
            mask_planes=measured.planes,
        ),
        flagged,
    )
    shifts = _star_shifts(case, diff, flagged)
    return {
        "floor_false_detections": counted["false_detections"],
        "floor_plus_noise_false": with_gaussian_noise(
            case, replace(diff, mask=mask), config.subtract
        ),
        "floor_star_shift_rms_px": shifts,
    }


def _noiseless_patch(case: Case, patch: Exposure) -> Exposure:
    """Return a template patch with its noiseless model as the image."""
    wcs = patch.require_wcs()
    sources = template_sources(case.sky, "r", wcs, patch.shape)
    fwhm = case.plan.template_fwhm["r"]
    model, _ = draw_model(patch.shape, wcs, sources, PsfModel(fwhm=fwhm))
    image = np.where(np.isfinite(patch.image), model, np.nan)
    return replace(patch, image=image.astype(np.float32))


def _star_shifts(
    case: Case, diff: Exposure, flagged: npt.NDArray[np.bool_]
) -> float:
    """Return the rms shift, in px, of bright isolated stars' residuals."""
    shifts = []
    stars = _isolated_stars(case, diff, flagged, 2e5, 5e6)
    for xi, yi, fi, psf, stamp in stars:
        half = psf.shape[0] // 2
        ix, iy = round(xi), round(yi)
        shifted = ndimage.shift(psf, (yi - iy, xi - ix), order=3)
        d_y, d_x = np.gradient(shifted)
        rows, cols = np.mgrid[-half : half + 1, -half : half + 1]
        width = -((cols - (xi - ix)) * d_x + (rows - (yi - iy)) * d_y)
        design = np.stack(
            [shifted, d_x, d_y, width, np.ones_like(psf)], axis=-1
        ).reshape(-1, 5)
        coefficients = np.linalg.lstsq(
            design, diff.image[stamp].astype(np.float64).ravel(), rcond=None
        )[0]
        shifts.append(math.hypot(coefficients[1], coefficients[2]) / fi)
    return float(np.sqrt(np.mean(np.square(shifts)))) if shifts else math.nan


def psf_only_kernel(
    science: Exposure, patches: list[Exposure], fitted: SolvedKernel
) -> SolvedKernel:
    """Fit the same AL basis to the known PSFs instead of the stars.

    Noise-free images hold the science PSF and the template PSF at the
    nodes of the science PSF grid (pulled inside the stamp margin); the
    spatial fit on those is the best a kernel built from the PSF models
    alone can do. It has no differential background.
    """
    if science.psf is None or science.psf.grid is None:
        msg = "the PSF-only baseline needs the science PSF grid"
        raise RuntimeError(msg)
    patch = next(p for p in patches if p.psf and p.psf.grid)
    template_psf = patch.psf.grid.image_at(  # type: ignore[union-attr]
        patch.shape[1] / 2, patch.shape[0] / 2
    )
    size = fitted.basis.size
    border = 20
    height, width = science.shape
    margin = size + template_psf.shape[0]
    grid = science.psf.grid
    science_img = np.zeros((height, width), np.float32)
    template_img = np.zeros(
        (height + 2 * border, width + 2 * border), np.float32
    )
    positions = []
    half = template_psf.shape[0] // 2
    for gy in grid.ys:
        for gx in grid.xs:
            x = int(np.clip(gx, margin, width - 1 - margin))
            y = int(np.clip(gy, margin, height - 1 - margin))
            science_psf = grid.image_at(x, y)
            sh = science_psf.shape[0] // 2
            science_img[y - sh : y + sh + 1, x - sh : x + sh + 1] += (
                1e5 * science_psf
            )
            ty, tx = y + border, x + border
            template_img[
                ty - half : ty + half + 1, tx - half : tx + half + 1
            ] += 1e5 * template_psf
            positions.append((x, y))
    ones = np.ones_like(science_img)
    kernel = fit_kernel(
        template_img,
        np.ones_like(template_img),
        science_img,
        ones,
        np.array(positions, dtype=float),
        fitted.basis,
        replace(DEFAULT_CONFIG.kernel, fit_for_background=False),
        border=border,
    )
    return replace(
        kernel,
        background=np.zeros_like(fitted.background),
        bbox=fitted.bbox,
    )


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


def _isolated_stars(
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
    stars = _isolated_stars(case, diff, flagged, 3e4, 1e6)
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
        # PSF, as v29's and v30's) reads on the decorrelated difference.
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
