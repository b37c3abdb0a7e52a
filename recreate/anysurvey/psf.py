"""The PSF of an input given as a PSF image.

`psf_from_image` turns a PSF image (an input's ``PSF`` extension or a
file) into the `PsfInfo` the pipeline uses: its FWHM is measured with
the very Moffat core fit that measures stars
(`recreate.pipeline.sources.moffat`), so a PSF image and the stars of the
same image give the same width, and the image itself is kept as a
one-node PSF grid.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from recreate.errors import FormatError
from recreate.exposure import PsfGrid, PsfInfo
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA
from recreate.pipeline.sources.moffat import fit_fwhm


def psf_from_image(
    psf: npt.NDArray[np.float64], shape: tuple[int, int], source: str
) -> PsfInfo:
    """Return the PSF of an image given as a PSF image.

    Parameters
    ----------
    psf
        The PSF image: odd sides, unit sum (`recreate.io.psfimage`).
    shape
        The exposure's shape: the PSF is placed at its centre.
    source
        The file name, for messages.

    Returns
    -------
    psf
        Its FWHM and a one-node grid holding the image.

    Raises
    ------
    FormatError
        If the width of the PSF image cannot be measured.
    """
    fwhm = psf_image_fwhm(psf)
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise FormatError(f"{source}: cannot measure the PSF image's width")
    height, width = shape
    grid = PsfGrid(
        xs=np.array([(width - 1) / 2.0]),
        ys=np.array([(height - 1) / 2.0]),
        images=psf.astype(np.float32)[np.newaxis, np.newaxis],
    )
    return PsfInfo(fwhm=fwhm, grid=grid)


def psf_image_fwhm(psf: npt.NDArray[np.float64]) -> float:
    """Return a PSF image's FWHM in pixels, measured as stars are.

    The image is padded to a square; the Moffat core fit starts from the
    FWHM of the Gaussian with the image's second moments.
    """
    side = max(psf.shape)
    square = np.zeros((side, side))
    top = (side - psf.shape[0]) // 2
    left = (side - psf.shape[1]) // 2
    square[top : top + psf.shape[0], left : left + psf.shape[1]] = psf
    half = side // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gy, gx = np.meshgrid(offsets, offsets, indexing="ij")
    total = float(square.sum())
    cx = float((square * gx).sum() / total)
    cy = float((square * gy).sum() / total)
    second = float(
        (square * ((gx - cx) ** 2 + (gy - cy) ** 2)).sum() / (2.0 * total)
    )
    start = FWHM_PER_SIGMA * math.sqrt(max(second, 0.25))
    # Uniform weights: a model image has no noise of its own.
    variance = np.full(square.shape, 1e-12)
    valid = np.ones(square.shape, dtype=np.bool_)
    return fit_fwhm(square, variance, valid, (cx, cy), min(start, half))
