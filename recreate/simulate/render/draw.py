"""Draw noiseless sources and the PSF grid with GalSim, stamp by stamp.

Sources and PSF grid nodes go through the same stamp drawing (the
local WCS Jacobian, ``method='auto'``), so a star is exactly the image
of the PSF stored in the `PsfGrid` at that place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import galsim
import numpy as np
import numpy.typing as npt

from recreate.exposure import PsfGrid
from recreate.simulate.render.geometry import (
    local_jacobians,
    source_positions,
)
from recreate.simulate.render.psf import (
    WING_THRESHOLD_NJY,
    PsfModel,
    _stamp_radii,
)
from recreate.simulate.render.sources import (
    GALAXY_TRUNCATION_HLR,
    FloatArray,
    SourceTable,
)

if TYPE_CHECKING:
    from astropy.wcs import WCS


def draw_model(
    shape: tuple[int, int],
    wcs: WCS,
    sources: SourceTable,
    psf: PsfModel,
    *,
    positions: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Draw the noiseless sources, in nJy, and say which were drawn.

    Each source is drawn on its own stamp at its exact position and
    added to the array, clipped at the edges. A stamp ends where the
    wings sink below `WING_THRESHOLD_NJY`, the same level in every image
    whatever its depth.

    Parameters
    ----------
    shape
        Array shape ``(height, width)``.
    wcs
        Celestial WCS of the array pixels (0-based).
    sources
        What to draw.
    psf
        The PSF model.
    positions
        Array positions of the sources, as `source_positions` returns
        them; computed here when not given.

    Returns
    -------
    model, drawn
        The model in nJy and whether each source touched the array
        (sources of zero flux are never drawn).

    Raises
    ------
    ValueError
        If the PSF model gives a non-positive width at a source, or the
        WCS cannot place a source near the image.
    """
    if positions is None:
        positions = source_positions(wcs, shape, sources)
    x, y = positions
    model = np.zeros(shape, dtype=np.float32)
    drawn = np.zeros(len(sources), dtype=np.bool_)
    candidates = np.flatnonzero(np.isfinite(x) & (sources.flux > 0))
    if len(candidates) == 0:
        return model, drawn
    cx, cy = x[candidates], y[candidates]
    jacobians = local_jacobians(wcs, cx, cy)
    # The PSF model (like a PsfGrid) holds only over the array: a source
    # centred off it takes the PSF of the nearest edge.
    height, width = shape
    fwhms = psf.fwhm_at_positions(
        np.clip(cx, 0, width - 1), np.clip(cy, 0, height - 1), shape
    )
    radii = _stamp_radii(
        sources,
        candidates,
        scales=np.sqrt(np.abs(np.linalg.det(jacobians))),
        fwhms=fwhms,
        psf=psf,
        threshold=WING_THRESHOLD_NJY,
    )
    for k, index in enumerate(candidates):
        window = _stamp_window(cx[k], cy[k], int(radii[k]), shape)
        if window is None:
            continue
        profile = _source_profile(sources, int(index), psf, float(fwhms[k]))
        stamp = _draw_stamp(profile, cx[k], cy[k], jacobians[k], window)
        _add_stamp(model, stamp, window)
        drawn[index] = True
    return model, drawn


def draw_psf_grid(
    shape: tuple[int, int],
    wcs: WCS,
    psf: PsfModel,
    size: int = 5,
    stamp: int = 41,
) -> PsfGrid:
    """Draw the PSF, with pixel response, on a grid spanning the array.

    Nodes are evenly spaced from the first to the last pixel along each
    axis (a single node sits at the centre). Each image is centred on
    its middle pixel, drawn exactly as a star at that node would be,
    and normalised to unit sum.

    Raises
    ------
    ValueError
        If ``size`` < 1, ``stamp`` is not an odd number >= 3, or the PSF
        model gives a non-positive width at a node.
    """
    _check_shape(shape)
    if size < 1:
        raise ValueError(f"PSF grid size {size} must be >= 1")
    if stamp < 3 or stamp % 2 == 0:
        raise ValueError(f"PSF stamp side {stamp} must be odd and >= 3")
    height, width = shape
    xs = _grid_nodes(width, size)
    ys = _grid_nodes(height, size)
    gx, gy = np.meshgrid(xs, ys)
    jacobians = local_jacobians(wcs, gx.ravel(), gy.ravel())
    fwhms = psf.fwhm_at_positions(gx.ravel(), gy.ravel(), shape)
    images = np.empty((size, size, stamp, stamp), dtype=np.float32)
    # The local Jacobian is uniform, so the stamp can sit anywhere: put
    # its middle pixel at (0, 0) and the PSF centre there.
    window = _Window(x0=-(stamp // 2), y0=-(stamp // 2), side=stamp)
    for k in range(size * size):
        profile = psf.profile_of_width(float(fwhms[k]))
        array = _draw_stamp(profile, 0.0, 0.0, jacobians[k], window)
        images.reshape(size * size, stamp, stamp)[k] = array / array.sum()
    return PsfGrid(xs=xs, ys=ys, images=images)


@dataclass(frozen=True)
class _Window:
    """A square stamp: its lower-left array pixel and side length."""

    x0: int
    y0: int
    side: int


def _stamp_window(
    x: float, y: float, radius: int, shape: tuple[int, int]
) -> _Window | None:
    """Return the stamp around ``(x, y)``, or None if it misses the array."""
    ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
    window = _Window(x0=ix - radius, y0=iy - radius, side=2 * radius + 1)
    height, width = shape
    misses = (
        window.x0 + window.side <= 0
        or window.y0 + window.side <= 0
        or window.x0 >= width
        or window.y0 >= height
    )
    return None if misses else window


def _draw_stamp(
    profile: galsim.GSObject,
    x: float,
    y: float,
    jacobian: FloatArray,
    window: _Window,
) -> npt.NDArray[np.float32]:
    """Draw ``profile`` centred at array position ``(x, y)`` on a stamp."""
    local_wcs = galsim.JacobianWCS(
        float(jacobian[0, 0]),
        float(jacobian[0, 1]),
        float(jacobian[1, 0]),
        float(jacobian[1, 1]),
    )
    # The stamp's GalSim bounds are its array coordinates, so the
    # object's GalSim centre is its array position, with no 1-offset.
    stamp = galsim.ImageF(
        window.side, window.side, xmin=window.x0, ymin=window.y0, wcs=local_wcs
    )
    profile.drawImage(
        image=stamp, center=galsim.PositionD(x, y), method="auto"
    )
    return np.asarray(stamp.array)


def _add_stamp(
    model: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.float32],
    window: _Window,
) -> None:
    """Add the part of a stamp that overlaps the array."""
    height, width = model.shape
    x_lo, y_lo = max(window.x0, 0), max(window.y0, 0)
    x_hi = min(window.x0 + window.side, width)
    y_hi = min(window.y0 + window.side, height)
    model[y_lo:y_hi, x_lo:x_hi] += stamp[
        y_lo - window.y0 : y_hi - window.y0,
        x_lo - window.x0 : x_hi - window.x0,
    ]


def _source_profile(
    sources: SourceTable, index: int, psf: PsfModel, fwhm: float
) -> galsim.GSObject:
    """Return the PSF-convolved profile of one source, in arcsec."""
    flux = float(sources.flux[index])
    local_psf = psf.profile_of_width(fwhm)
    if not sources.is_galaxy[index]:
        return local_psf.withFlux(flux)
    hlr = float(sources.half_light_radius[index])
    galaxy = galsim.Sersic(
        n=float(sources.sersic_n[index]),
        half_light_radius=hlr,
        trunc=GALAXY_TRUNCATION_HLR * hlr,
        flux=flux,
    )
    g1, g2 = float(sources.g1[index]), float(sources.g2[index])
    if g1 != 0.0 or g2 != 0.0:
        galaxy = galaxy.shear(g1=g1, g2=g2)
    return galsim.Convolve(galaxy, local_psf)


def _grid_nodes(length: int, size: int) -> FloatArray:
    """Return ``size`` evenly spaced pixel positions spanning ``length``."""
    if size == 1:
        return np.array([(length - 1) / 2.0])
    return np.linspace(0.0, length - 1.0, size)


def _check_shape(shape: tuple[int, int]) -> None:
    """Reject shapes that are not two positive integers."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image shape {shape} must be two positive sizes")
