"""A seeded science/template pair on any grid, as plain files of any survey.

The any-survey mode (`recreate subtract`) is measured on pairs like the
ones other surveys ship: a science image and a deeper template on their
own TAN grids (the template turned and shifted by a fraction of a pixel,
and larger by a border), each a plain FITS file with a sky WCS, a
``VARIANCE`` and a ``MASK`` extension (true variance planes, no DETECTED
plane) and a ``PSF`` image extension. The sky is the simulator's: stars
(r 15-25.5, dN/dm ~ 10^(0.12 m)) and Sersic galaxies (r 17-25.5,
dN/dm ~ 10^(0.33 m)) at the given densities, Kolmogorov PSFs, Poisson
and read noise (`recreate.simulate.render`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.wcs import WCS

from recreate.simulate.render import (
    NoiseModel,
    PsfModel,
    RenderResult,
    SourceTable,
    render_image,
)

#: Pixel scale, arcsec (LSST's).
SCALE = 0.2
#: r-band visit noise: sky electrons per pixel and calibration.
VISIT_NOISE = NoiseModel(sky_electrons=877.0, njy_per_electron=0.548)
#: Inputs to a template coadd: its noise is that of this many visits.
TEMPLATE_DEPTH = 12
#: Extra template pixels on every side (GetTemplate's border and more).
TEMPLATE_MARGIN = 40


@dataclass(frozen=True, eq=False)
class SimulatedPair:
    """A science image and its template, rendered from one sky.

    Attributes
    ----------
    science, template
        The renders (image, true variance, mask, noiseless model, PSF).
    science_wcs, template_wcs
        Their celestial WCSs (array pixels, 0-based).
    """

    science: RenderResult
    template: RenderResult
    science_wcs: WCS
    template_wcs: WCS


def simulate_pair(
    side: int = 2048,
    *,
    seed: int = 1,
    science_fwhm: float = 0.9,
    template_fwhm: float = 0.7,
    stars_per_mpix: float = 600.0,
    galaxies_per_mpix: float = 1000.0,
    template_depth: int = TEMPLATE_DEPTH,
) -> SimulatedPair:
    """Render a square science image and a larger, deeper template.

    Parameters
    ----------
    side
        Science image side, px.
    seed
        Seed of the sky and of both images' noise.
    science_fwhm, template_fwhm
        PSF FWHMs, arcsec.
    stars_per_mpix, galaxies_per_mpix
        Source densities per million science pixels.
    template_depth
        The template's noise is that of this many visits coadded.

    Returns
    -------
    pair
        The two renders and their WCSs.
    """
    rng = np.random.default_rng(seed)
    science_wcs = tan_wcs(side, side, rotation_deg=0.0, offset=(0.0, 0.0))
    template_side = side + 2 * TEMPLATE_MARGIN
    template_wcs = tan_wcs(
        template_side,
        side,
        rotation_deg=0.4,
        offset=(TEMPLATE_MARGIN + 0.37, TEMPLATE_MARGIN - 0.21),
    )
    sources = _sky(science_wcs, side, stars_per_mpix, galaxies_per_mpix, rng)
    science = render_image(
        (side, side),
        science_wcs,
        sources,
        PsfModel(fwhm=science_fwhm),
        VISIT_NOISE,
        seed=seed,
    )
    deep = NoiseModel(
        sky_electrons=VISIT_NOISE.sky_electrons * template_depth,
        njy_per_electron=VISIT_NOISE.njy_per_electron / template_depth,
        read_noise=VISIT_NOISE.read_noise * math.sqrt(template_depth),
        saturation_electrons=None,
    )
    template = render_image(
        (template_side, template_side),
        template_wcs,
        sources,
        PsfModel(fwhm=template_fwhm),
        deep,
        seed=seed + 1,
    )
    return SimulatedPair(science, template, science_wcs, template_wcs)


def tan_wcs(
    side: int,
    science_side: int,
    *,
    rotation_deg: float,
    offset: tuple[float, float],
) -> WCS:
    """Return a TAN WCS at 0.2"/px whose science-centre pixel is offset."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    centre = (science_side + 1) / 2.0
    wcs.wcs.crpix = [centre + offset[0], centre + offset[1]]
    angle = math.radians(rotation_deg)
    wcs.wcs.cd = (SCALE / 3600.0) * np.array(
        [
            [-math.cos(angle), math.sin(angle)],
            [math.sin(angle), math.cos(angle)],
        ]
    )
    wcs.pixel_shape = (side, side)
    return wcs


def write_pair(pair: SimulatedPair, directory: Path) -> tuple[Path, Path]:
    """Write the pair as plain FITS files; return (science, template).

    Each file holds the image (primary, with the WCS), ``VARIANCE``,
    ``MASK`` (afw bits, ``MP_*`` cards, no DETECTED plane) and ``PSF``
    (the PSF image at the image centre).
    """
    paths = []
    for name, render, wcs in (
        ("science", pair.science, pair.science_wcs),
        ("template", pair.template, pair.template_wcs),
    ):
        path = directory / f"{name}.fits"
        _plain_hdulist(render, wcs).writeto(path, overwrite=True)
        paths.append(path)
    return paths[0], paths[1]


def _plain_hdulist(render: RenderResult, wcs: WCS) -> fits.HDUList:
    """Return a render as image, VARIANCE, MASK and PSF extensions."""
    header = wcs.to_header()
    header["BUNIT"] = "nJy"
    mask_header = fits.Header()
    for key, bit in render.mask_planes.header_cards():
        mask_header[key] = bit
    grid = render.psf_grid
    centre = grid.images[len(grid.ys) // 2, len(grid.xs) // 2]
    return fits.HDUList(
        [
            fits.PrimaryHDU(render.image, header),
            fits.ImageHDU(render.variance, name="VARIANCE"),
            fits.ImageHDU(render.mask, mask_header, name="MASK"),
            fits.ImageHDU(np.asarray(centre, np.float32), name="PSF"),
        ]
    )


def _sky(
    wcs: WCS,
    side: int,
    stars_per_mpix: float,
    galaxies_per_mpix: float,
    rng: np.random.Generator,
) -> SourceTable:
    """Draw stars and galaxies over the science image and a margin."""
    reach = side + 2 * TEMPLATE_MARGIN
    area = reach * reach / 1e6
    n_stars = rng.poisson(stars_per_mpix * area)
    n_gals = rng.poisson(galaxies_per_mpix * area)
    n = n_stars + n_gals
    x = rng.uniform(-TEMPLATE_MARGIN, side + TEMPLATE_MARGIN, n)
    y = rng.uniform(-TEMPLATE_MARGIN, side + TEMPLATE_MARGIN, n)
    ra, dec = wcs.pixel_to_world_values(x, y)
    mags = np.concatenate(
        [
            _power_law_mags(rng, n_stars, 15.0, 25.5, 0.12),
            _power_law_mags(rng, n_gals, 17.0, 25.5, 0.33),
        ]
    )
    is_galaxy = np.arange(n) >= n_stars
    radius = 0.6 * 10 ** (-0.1 * (mags - 22.0) + rng.normal(0, 0.15, n))
    shear = np.clip(rng.rayleigh(0.15, n), 0.0, 0.6)
    angle = rng.uniform(0, np.pi, n)
    return SourceTable(
        ra=np.asarray(ra),
        dec=np.asarray(dec),
        flux=10 ** ((31.4 - mags) / 2.5),
        is_galaxy=is_galaxy,
        half_light_radius=np.where(is_galaxy, np.clip(radius, 0.15, 4.0), 1),
        sersic_n=np.where(
            is_galaxy, np.where(rng.uniform(size=n) < 0.7, 1.0, 4.0), 1.0
        ),
        g1=np.where(is_galaxy, shear * np.cos(2 * angle), 0.0),
        g2=np.where(is_galaxy, shear * np.sin(2 * angle), 0.0),
    )


def _power_law_mags(
    rng: np.random.Generator, n: int, low: float, high: float, slope: float
) -> npt.NDArray[np.float64]:
    """Draw magnitudes with dN/dm ~ 10^(slope m) on [low, high]."""
    u = rng.uniform(size=n)
    a, b = 10 ** (slope * low), 10 ** (slope * high)
    return np.log10(a + u * (b - a)) / slope
