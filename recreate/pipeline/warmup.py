"""Run the whole pipeline once on a small synthetic pair, to warm a process.

The first recreation in a process loads every compiled (numba) kernel
from its cache and imports the I/O and WCS code: about 1.5 s of a
full-size detector's first recreation on the development machine. A
worker that runs `warm_up` when it starts pays that before its first
request instead of during it.

The pair is built here with numpy alone (Gaussian stars on Gaussian
noise, the template on a shifted and slightly rotated TAN grid so that
it is really warped), so no file, repository or simulator is needed.
It is recreated with each recipe (DP2's steps, HIGH_VARIANCE's linear
variance background and the difference's super-pixel-filtered
backgrounds, use kernels DP1's do not, and a worker serves both), and a
51x51 stamp of it is rendered from its solution (a region warps a
window of the template, with kernels of its own).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

from recreate.exposure import Exposure, MaskPlanes, PsfInfo
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox
from recreate.pipeline.config import DEFAULT_CONFIG
from recreate.pipeline.recipes import RECIPES
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA
from recreate.pipeline.subtract import DifferenceResult, subtract
from recreate.solution import RenderInputs, render

#: Side of the synthetic images, px: 4 x 4 kernel cells of 128 px.
_SIDE = 512
#: Pixel scale, arcsec.
_SCALE = 0.2
#: Stars on a regular grid (isolated by construction), per side.
_STARS_PER_SIDE = 9
#: Noise per pixel (the stars have S/N of about 30 to 300).
_NOISE = 10.0
#: Gaussian PSF widths (sigma, px) of the science and template images.
_SCIENCE_SIGMA = 2.0
_TEMPLATE_SIGMA = 1.5


def warm_up(seed: int = 0) -> DifferenceResult:
    """Recreate a small synthetic difference image and return it.

    Parameters
    ----------
    seed
        Seed of the synthetic noise.

    Returns
    -------
    result
        The difference image of the synthetic pair under the default
        recipe (its stars subtract to noise; tests check that it does).
    """
    rng = np.random.default_rng(seed)
    science_wcs = _tan_wcs(_SIDE, rotation_deg=0.0, offset=(0.0, 0.0))
    # The template grid is larger (it must cover the science image and
    # GetTemplate's border), shifted by a fraction of a pixel and turned.
    template_side = _SIDE + 80
    template_wcs = _tan_wcs(
        template_side, rotation_deg=0.3, offset=(40.3, 39.6)
    )
    ra, dec = _star_positions(science_wcs)
    fluxes = np.linspace(2.5e3, 2.5e4, len(ra))
    science = _exposure(
        science_wcs, (_SIDE, _SIDE), ra, dec, fluxes, _SCIENCE_SIGMA, rng
    )
    template = _exposure(
        template_wcs,
        (template_side, template_side),
        ra,
        dec,
        fluxes,
        _TEMPLATE_SIGMA,
        rng,
    )
    result = subtract(science, [template])
    for recipe in RECIPES.values():
        if recipe != DEFAULT_CONFIG:
            subtract(science, [template], config=recipe)
    if result.solution is not None:
        # A region's render warps a window of the template (its own
        # kernels): warm a stamp's too.
        geometry = ImageGeometry(science.wcs, science.xy0, science.shape)
        x0, y0 = science.xy0
        render(
            result.solution,
            RenderInputs(science, geometry, [template]),
            PixelBox(x0 + _SIDE // 2, y0 + _SIDE // 2, 51, 51),
        )
    return result


def _tan_wcs(
    side: int, rotation_deg: float, offset: tuple[float, float]
) -> WCS:
    """Return a TAN WCS centred near (150, 2) deg, 0.2 arcsec pixels."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    # FITS pixels are 1-based: the science centre, moved by the offset.
    wcs.wcs.crpix = [
        (_SIDE + 1) / 2.0 + offset[0],
        (_SIDE + 1) / 2.0 + offset[1],
    ]
    scale = _SCALE / 3600.0
    angle = math.radians(rotation_deg)
    wcs.wcs.cd = scale * np.array(
        [
            [-math.cos(angle), math.sin(angle)],
            [math.sin(angle), math.cos(angle)],
        ]
    )
    wcs.pixel_shape = (side, side)
    return wcs


def _star_positions(
    wcs: WCS,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return the sky positions of a grid of stars inside the science image."""
    margin = 50.0
    steps = np.linspace(margin, _SIDE - 1 - margin, _STARS_PER_SIDE)
    # A fraction of a pixel off the grid, different for every star.
    jitter = np.arange(_STARS_PER_SIDE**2) * 0.137 % 1.0
    x = np.repeat(steps, _STARS_PER_SIDE) + jitter
    y = np.tile(steps, _STARS_PER_SIDE) + jitter[::-1]
    ra, dec = wcs.pixel_to_world_values(x, y)
    return np.asarray(ra), np.asarray(dec)


def _exposure(
    wcs: WCS,
    shape: tuple[int, int],
    ra: npt.NDArray[np.float64],
    dec: npt.NDArray[np.float64],
    fluxes: npt.NDArray[np.float64],
    sigma: float,
    rng: np.random.Generator,
) -> Exposure:
    """Return Gaussian stars plus noise on ``wcs``'s grid, with planes."""
    x, y = wcs.world_to_pixel_values(ra, dec)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = np.zeros(shape)
    radius = int(6 * sigma)
    norm = 1.0 / (2.0 * math.pi * sigma**2)
    for xi, yi, flux in zip(x, y, fluxes, strict=True):
        ix, iy = round(xi), round(yi)
        window = (
            slice(max(iy - radius, 0), iy + radius + 1),
            slice(max(ix - radius, 0), ix + radius + 1),
        )
        dx = cols[window] - xi
        dy = rows[window] - yi
        image[window] += (
            flux * norm * np.exp(-0.5 * (dx * dx + dy * dy) / sigma**2)
        )
    variance = _NOISE**2 + np.maximum(image, 0.0) / 100.0
    image += rng.normal(0.0, 1.0, shape) * np.sqrt(variance)
    fwhm = sigma * FWHM_PER_SIGMA
    return Exposure(
        image=image.astype(np.float32),
        variance=variance.astype(np.float32),
        mask=np.zeros(shape, dtype=np.int32),
        mask_planes=MaskPlanes.afw_default(),
        wcs=wcs,
        psf=PsfInfo(fwhm=fwhm),
    )
