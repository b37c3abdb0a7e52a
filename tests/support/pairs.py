"""Small science/template pairs of Gaussian stars, as plain FITS files.

The science image is ``side`` px square on a north-up TAN grid; the
template covers it with a margin, on a grid turned by 0.3 degrees and
shifted by a fraction of a pixel, with a sharper PSF and less noise.
Stars sit on a regular grid (isolated by construction) with a fraction
of a pixel of jitter each. Files carry only the image and its WCS (the
any-survey mode estimates the variance), unless ``planes`` asks for
VARIANCE and MASK extensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

MARGIN = 30
SCALE = 0.2


@dataclass(frozen=True)
class PairSpec:
    side: int = 256
    stars_per_side: int = 5
    flux: float = 2.0e4
    noise: float = 10.0
    science_sigma: float = 2.0
    template_sigma: float = 1.4
    template_noise: float = 4.0
    sky: float = 0.0
    seed: int = 0


def tan_wcs(side, rotation_deg=0.0, offset=(0.0, 0.0), science_side=None):
    science_side = science_side or side
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    centre = (science_side + 1) / 2.0
    wcs.wcs.crpix = [centre + offset[0], centre + offset[1]]
    angle = math.radians(rotation_deg)
    wcs.wcs.cd = (SCALE / 3600.0) * np.array(
        [
            [-math.cos(angle), math.sin(angle)],
            [math.sin(angle), math.cos(angle)],
        ]
    )
    return wcs


def star_images(spec: PairSpec):
    """Return (science, template, science_wcs, template_wcs) arrays."""
    rng = np.random.default_rng(spec.seed)
    science_wcs = tan_wcs(spec.side)
    template_side = spec.side + 2 * MARGIN
    template_wcs = tan_wcs(
        template_side,
        rotation_deg=0.3,
        offset=(MARGIN + 0.31, MARGIN - 0.27),
        science_side=spec.side,
    )
    n = spec.stars_per_side
    steps = np.linspace(40.0, spec.side - 41.0, n)
    jitter = (np.arange(n * n) * 0.137) % 1.0
    x = np.repeat(steps, n) + jitter
    y = np.tile(steps, n) + jitter[::-1]
    ra, dec = science_wcs.pixel_to_world_values(x, y)
    science = _draw(
        (spec.side, spec.side),
        science_wcs,
        ra,
        dec,
        spec.flux,
        spec.science_sigma,
        spec.noise,
        rng,
    )
    template = _draw(
        (template_side, template_side),
        template_wcs,
        ra,
        dec,
        spec.flux,
        spec.template_sigma,
        spec.template_noise,
        rng,
    )
    return science + spec.sky, template + spec.sky, science_wcs, template_wcs


def _draw(shape, wcs, ra, dec, flux, sigma, noise, rng):
    x, y = wcs.world_to_pixel_values(ra, dec)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = np.zeros(shape)
    norm = flux / (2.0 * math.pi * sigma**2)
    for xi, yi in zip(x, y, strict=True):
        image += norm * np.exp(
            -0.5 * ((cols - xi) ** 2 + (rows - yi) ** 2) / sigma**2
        )
    return image + rng.normal(0.0, noise, shape)


def gaussian_psf(sigma, half=12):
    offsets = np.arange(-half, half + 1)
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
    psf = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
    return (psf / psf.sum()).astype(np.float32)


def write_star_pair(
    directory: Path, spec: PairSpec = PairSpec(), *, psf=False, **cards
):
    """Write the pair as plain FITS; return (science, template) paths.

    ``cards`` are added to both primary headers (e.g. ``LTV1=-17.7``);
    with ``psf`` each file gets a ``PSF`` extension (its Gaussian).
    """
    science, template, science_wcs, template_wcs = star_images(spec)
    paths = []
    for name, image, wcs, sigma in (
        ("science", science, science_wcs, spec.science_sigma),
        ("template", template, template_wcs, spec.template_sigma),
    ):
        header = wcs.to_header()
        for key, value in cards.items():
            header[key] = value
        path = directory / f"{name}.fits"
        hdus = [fits.PrimaryHDU(image.astype(np.float32), header)]
        if psf:
            hdus.append(fits.ImageHDU(gaussian_psf(sigma), name="PSF"))
        fits.HDUList(hdus).writeto(path)
        paths.append(path)
    return paths[0], paths[1]


def robust_z(
    exposure,
    planes=(
        "BAD",
        "SAT",
        "NO_DATA",
        "EDGE",
        "SAT_TEMPLATE",
        "DETECTED",
        "DETECTED_NEGATIVE",
    ),
):
    """Robust std of difference / sqrt(variance) over unflagged pixels."""
    bits = exposure.mask_planes.value_of_present(planes)
    good = (
        ((exposure.mask & bits) == 0)
        & np.isfinite(exposure.image)
        & (exposure.variance > 0)
    )
    z = exposure.image[good] / np.sqrt(exposure.variance[good])
    q1, q3 = np.percentile(z, [25, 75])
    return float((q3 - q1) / 1.349), int(good.sum())
