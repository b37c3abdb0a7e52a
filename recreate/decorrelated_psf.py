"""The PSF of a decorrelated difference image, offered beside the product.

v29 and v30 attach the science PSF to the difference image (the
corrected PSF is commented out upstream, DM-47461), and so does this
project: the product keeps the release's PSF. But decorrelation filters
the image, so a point source on the difference has the science PSF
*filtered by the decorrelation*; a PSF fit with the attached PSF reads
point sources about 2% high (``bench/diffim.py`` measures it). The
filtered PSF is written beside the release's on request, as an extra
extension ``DECORRELATED_PSF`` in the ``PSF_GRID`` layout
(`recreate.io.psfgrid`), with the same grid nodes.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.io import fits

from recreate.exposure import PsfGrid
from recreate.io.psfgrid import psf_grid_hdu
from recreate.pipeline.match.decorrelate import decorrelated_psf
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA
from recreate.pipeline.subtract import DifferenceResult

DECORRELATED_PSF_EXTNAME = "DECORRELATED_PSF"
#: Side, in FWHMs, of the Gaussian made for a science PSF known only by
#: its width.
_GAUSSIAN_SIDE_FWHMS = 5.0


def decorrelated_psf_grid(result: DifferenceResult) -> PsfGrid | None:
    """Return the PSF of a decorrelated difference, on the science grid.

    Each node of the science PSF grid (a Gaussian of the science FWHM
    when the science image has only a width) is filtered with the
    decorrelation the difference went through, with the kernel at the
    detector's centre as v29's decorrelation uses it (for a region too).

    Parameters
    ----------
    result
        A recreation.

    Returns
    -------
    grid
        The filtered PSFs, unit sum, at the science grid's nodes; None
        when the difference was not decorrelated or has no PSF.
    """
    levels = result.variance_levels
    psf = result.exposure.psf
    if psf is None or not all(math.isfinite(v) for v in levels):
        return None
    # The decorrelation used the kernel at the detector's centre: that of
    # the whole detector also for a region rendered from its solution.
    height, width = (
        result.exposure.shape
        if result.solution is None
        else result.solution.frame.shape
    )
    kernel = result.kernel.kernel_image(width / 2.0, height / 2.0)
    grid = psf.grid or gaussian_psf_grid(psf.fwhm, result.exposure.shape)
    images = np.empty_like(grid.images)
    for j in range(len(grid.ys)):
        for i in range(len(grid.xs)):
            node = grid.images[j, i].astype(np.float64)
            images[j, i] = decorrelated_psf(node, kernel, *levels)
    return PsfGrid(xs=grid.xs, ys=grid.ys, images=images)


def gaussian_psf_grid(fwhm: float, shape: tuple[int, int]) -> PsfGrid:
    """Return a one-node grid holding a unit-sum Gaussian of ``fwhm``."""
    sigma = fwhm / FWHM_PER_SIGMA
    half = max(3, math.ceil(_GAUSSIAN_SIDE_FWHMS * fwhm / 2.0))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gy, gx = np.meshgrid(offsets, offsets, indexing="ij")
    image = np.exp(-0.5 * (gx**2 + gy**2) / sigma**2)
    height, width = shape
    return PsfGrid(
        xs=np.array([(width - 1) / 2.0]),
        ys=np.array([(height - 1) / 2.0]),
        images=(image / image.sum()).astype(np.float32)[
            np.newaxis, np.newaxis
        ],
    )


def decorrelated_psf_hdu(result: DifferenceResult) -> fits.ImageHDU | None:
    """Return the ``DECORRELATED_PSF`` extension of a result, if any.

    Returns
    -------
    hdu
        The filtered PSF grid as an image extension, or None when the
        difference was not decorrelated or has no PSF.
    """
    grid = decorrelated_psf_grid(result)
    if grid is None:
        return None
    hdu = psf_grid_hdu(grid)
    hdu.header["EXTNAME"] = DECORRELATED_PSF_EXTNAME
    hdu.header["EXTTYPE"] = DECORRELATED_PSF_EXTNAME
    hdu.header["COMMENT"] = (
        "PSF of the decorrelated difference (science PSF filtered by the "
        "decorrelation); the primary PSF is the science PSF, as v29's"
    )
    return hdu
