"""Where sources fall: picking the sources on an image, and their truth.

Helpers of `recreate.simulate.scene`: the static sources with their
fluxes, the sources within a margin of an image (a cheap angular cut,
then the WCS), and the truth rows of the injections on a visit image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from recreate.simulate.catalog import StaticSky
from recreate.simulate.render import SourceTable
from recreate.simulate.survey import Visit


@dataclass(frozen=True)
class Injected:
    """What varies in one visit: positions and fluxes, with truth ids."""

    source_id: npt.NDArray[np.int64]
    kind: npt.NDArray[np.str_]
    ra: npt.NDArray[np.float64]
    dec: npt.NDArray[np.float64]
    flux: npt.NDArray[np.float64]
    template_flux: npt.NDArray[np.float64]


def static_sources(
    sky: StaticSky, keep: npt.NDArray[np.bool_], flux: npt.ArrayLike
) -> SourceTable:
    """Return the static sources selected by ``keep`` with fluxes."""
    return SourceTable(
        ra=sky.ra[keep],
        dec=sky.dec[keep],
        flux=np.asarray(flux, dtype=float),
        is_galaxy=sky.is_galaxy[keep],
        half_light_radius=sky.half_light_radius[keep],
        sersic_n=sky.sersic_n[keep],
        g1=sky.g1[keep],
        g2=sky.g2[keep],
    )


def on_image(
    sources: SourceTable, wcs: WCS, shape: tuple[int, int], margin: int
) -> SourceTable:
    """Keep the sources within ``margin`` pixels of an image."""
    return sources.take(within(wcs, shape, sources.ra, sources.dec, margin))


def within(
    wcs: WCS,
    shape: tuple[int, int],
    ra: npt.NDArray[np.float64],
    dec: npt.NDArray[np.float64],
    margin: float,
) -> npt.NDArray[np.bool_]:
    """Say which sky positions fall within ``margin`` px of an array."""
    height, width = shape
    # A cheap angular cut first: the SIP inverse is iterative.
    centre = wcs.pixel_to_world_values((width - 1) / 2, (height - 1) / 2)
    scale = float(np.max(proj_plane_pixel_scales(wcs)))
    radius = (np.hypot(width, height) / 2 + margin) * scale * 1.5
    cos_dec = math.cos(math.radians(float(centre[1])))
    dra = ((ra - float(centre[0]) + 180.0) % 360.0 - 180.0) * cos_dec
    near = np.hypot(dra, dec - float(centre[1])) < radius
    keep = np.zeros(len(ra), dtype=bool)
    if near.any():
        x, y = wcs.world_to_pixel_values(ra[near], dec[near])
        inside = (
            (x > -margin)
            & (x < width - 1 + margin)
            & (y > -margin)
            & (y < height - 1 + margin)
        )
        keep[np.flatnonzero(near)[inside]] = True
    return keep


def truth_rows(
    injected: Injected,
    visit: Visit,
    detector: int,
    wcs: WCS,
    shape: tuple[int, int],
) -> list[tuple[object, ...]]:
    """Return the truth rows of injections whose centres are on the image."""
    on = within(wcs, shape, injected.ra, injected.dec, margin=0)
    if not on.any():
        return []
    x, y = wcs.world_to_pixel_values(injected.ra[on], injected.dec[on])
    return [
        (
            visit.visit,
            detector,
            int(sid),
            str(kind),
            float(ra),
            float(dec),
            float(px),
            float(py),
            float(flux),
            float(tflux),
        )
        for sid, kind, ra, dec, px, py, flux, tflux in zip(
            injected.source_id[on],
            injected.kind[on],
            injected.ra[on],
            injected.dec[on],
            x,
            y,
            injected.flux[on],
            injected.template_flux[on],
            strict=True,
        )
    ]
