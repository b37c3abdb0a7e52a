"""Small simulated images with known stars, galaxies and noise."""

from __future__ import annotations

import galsim
import numpy as np
from astropy.wcs import WCS

from recreate.exposure import MaskPlanes
from recreate.simulate.render import (
    NoiseModel,
    PsfModel,
    RenderResult,
    SourceTable,
    render_image,
)

SCALE = 0.2  # arcsec per pixel
R_BAND = NoiseModel(sky_electrons=877.0, njy_per_electron=0.548)
PLANES = MaskPlanes.afw_default()


def tan_wcs(shape):
    """Return a north-up TAN WCS centred on the array."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.1, -28.1]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cd = np.array([[-SCALE / 3600, 0.0], [0.0, SCALE / 3600]])
    return wcs


def stars(wcs, xs, ys, flux):
    """Return point sources at array positions."""
    xs = np.atleast_1d(np.asarray(xs, dtype=float))
    ys = np.atleast_1d(np.asarray(ys, dtype=float))
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    return SourceTable.stars(ra, dec, np.broadcast_to(flux, xs.shape))


def galaxies(wcs, xs, ys, flux, hlr=0.8, n=1.0, g1=0.0):
    """Return Sersic galaxies (half-light radius in arcsec)."""
    xs = np.atleast_1d(np.asarray(xs, dtype=float))
    ys = np.atleast_1d(np.asarray(ys, dtype=float))
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    count = len(xs)
    return SourceTable(
        ra=ra,
        dec=dec,
        flux=np.broadcast_to(flux, xs.shape),
        is_galaxy=np.ones(count, dtype=bool),
        half_light_radius=np.broadcast_to(hlr, xs.shape),
        sersic_n=np.broadcast_to(n, xs.shape),
        g1=np.broadcast_to(g1, xs.shape),
        g2=np.zeros(count),
    )


def render(
    shape, sources, *, fwhm=0.9, profile="kolmogorov", seed=1, noise=R_BAND
):
    """Render sources with a constant PSF of ``fwhm`` arcsec."""
    return render_image(
        shape,
        tan_wcs(shape),
        sources,
        PsfModel(fwhm=fwhm, profile=profile),
        noise,
        seed=seed,
    )


def field(shape, *, n_stars, n_galaxies, fwhm, profile, seed):
    """Render random stars (S/N ~50-1000) among random galaxies."""
    rng = np.random.default_rng(seed)
    wcs = tan_wcs(shape)
    margin = 12
    star_x = rng.uniform(margin, shape[1] - margin, n_stars)
    star_y = rng.uniform(margin, shape[0] - margin, n_stars)
    gal_x = rng.uniform(margin, shape[1] - margin, n_galaxies)
    gal_y = rng.uniform(margin, shape[0] - margin, n_galaxies)
    sources = SourceTable.concatenate(
        stars(wcs, star_x, star_y, 10 ** rng.uniform(4.3, 5.7, n_stars)),
        galaxies(
            wcs,
            gal_x,
            gal_y,
            10 ** rng.uniform(4.3, 5.7, n_galaxies),
            hlr=rng.uniform(0.3, 1.5, n_galaxies),
            n=np.where(rng.random(n_galaxies) < 0.5, 1.0, 4.0),
            g1=rng.uniform(-0.3, 0.3, n_galaxies),
        ),
    )
    return render(shape, sources, fwhm=fwhm, profile=profile, seed=seed)


def gaussian_star_image(shape, xs, ys, fluxes, sigma, noise_sigma, seed):
    """Return (image, variance) of pixel-integrated Gaussian stars.

    Drawn with GalSim (pixel response included); constant sky noise.
    """
    image = galsim.ImageF(shape[1], shape[0], scale=1.0)
    for x, y, flux in zip(xs, ys, fluxes, strict=True):
        star = galsim.Gaussian(sigma=sigma, flux=flux)
        # GalSim's true centre of a (w x h) image is at ((w+1)/2, (h+1)/2)
        # in its 1-based pixels; offsets are from there.
        offset = (x - (shape[1] - 1) / 2, y - (shape[0] - 1) / 2)
        star.drawImage(image, offset=offset, add_to_image=True)
    rng = np.random.default_rng(seed)
    pixels = image.array.astype(np.float64)
    noisy = pixels + rng.normal(0.0, noise_sigma, shape)
    variance = np.full(shape, noise_sigma**2, dtype=np.float32)
    return noisy.astype(np.float32), variance


def psf_flux_for_snr(snr, sigma, noise_sigma):
    """Return the flux of a Gaussian star of given PSF-flux S/N.

    With constant noise the PSF-flux error is noise * sqrt(4 pi) sigma.
    """
    return snr * noise_sigma * np.sqrt(4 * np.pi) * sigma


def as_exposure_parts(result: RenderResult):
    """Return (image, variance, mask, planes) of a render."""
    return result.image, result.variance, result.mask, result.mask_planes
