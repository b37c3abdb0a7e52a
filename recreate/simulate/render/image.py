"""Render a whole image: `render_image` and the `RenderResult` it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes, PsfGrid
from recreate.simulate.render.draw import (
    _check_shape,
    draw_model,
    draw_psf_grid,
)
from recreate.simulate.render.geometry import source_positions
from recreate.simulate.render.noise import NoiseModel, expose
from recreate.simulate.render.psf import PsfModel
from recreate.simulate.render.sources import FloatArray, SourceTable

if TYPE_CHECKING:
    from astropy.wcs import WCS


@dataclass(frozen=True, eq=False)
class RenderResult:
    """The pixels of a rendered image and the truth behind them.

    Parameters
    ----------
    image
        Background-subtracted image in nJy, with Poisson and read noise.
    variance
        Variance in nJy^2 (sky + source Poisson + read noise), computed
        from the noiseless model, so it is smooth.
    mask
        int32 mask on `mask_planes` (afw default bits); SAT where a
        pixel reached the full well, including bleed trails.
    model
        Noiseless, unsaturated source model in nJy.
    psf_grid
        The PSF (pixel response included, unit sum) on a regular grid
        of array positions spanning the image.
    x, y
        Array position of each source; NaN for those too far away.
    drawn
        Whether each source's stamp touched the image.
    mask_planes
        Names and bits of the mask planes.
    """

    image: npt.NDArray[np.float32]
    variance: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int32]
    model: npt.NDArray[np.float32]
    psf_grid: PsfGrid
    x: FloatArray
    y: FloatArray
    drawn: npt.NDArray[np.bool_]
    mask_planes: MaskPlanes = field(default_factory=MaskPlanes.afw_default)


def render_image(
    shape: tuple[int, int],
    wcs: WCS,
    sources: SourceTable,
    psf: PsfModel,
    noise: NoiseModel,
    *,
    seed: int,
    psf_grid_size: int = 5,
    psf_stamp: int = 41,
) -> RenderResult:
    """Render sources into a noisy, background-subtracted image.

    Parameters
    ----------
    shape
        Array shape ``(height, width)``.
    wcs
        Celestial WCS of the array pixels (0-based), TAN or TAN-SIP.
    sources
        What to draw. Sources whose stamps miss the image are skipped.
    psf
        The PSF and how it varies across the array.
    noise
        Sky, calibration, read noise and full well.
    seed
        Seed of the noise; the same seed gives bit-identical pixels.
    psf_grid_size
        Number of PSF grid nodes along each axis.
    psf_stamp
        Side of each PSF grid image, in pixels (odd).

    Returns
    -------
    result
        Image, variance, mask, noiseless model and PSF grid.

    Raises
    ------
    ValueError
        If the shape, seed or grid parameters are invalid, the PSF
        model gives a non-positive width on the image, or the WCS cannot
        place a source that falls near the image.
    """
    _check_shape(shape)
    if seed < 0:
        raise ValueError(f"seed {seed} must be >= 0")
    x, y = source_positions(wcs, shape, sources)
    model, drawn = draw_model(shape, wcs, sources, psf, positions=(x, y))
    rng = np.random.Generator(np.random.PCG64(seed))
    image, variance, mask, planes = expose(model, noise, rng)
    grid = draw_psf_grid(shape, wcs, psf, psf_grid_size, psf_stamp)
    return RenderResult(
        image=image,
        variance=variance,
        mask=mask,
        model=model,
        psf_grid=grid,
        x=x,
        y=y,
        drawn=drawn,
        mask_planes=planes,
    )
