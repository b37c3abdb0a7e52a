"""Turn a source catalogue, a WCS, a PSF and a noise model into pixels.

This is the pixel stage of the LSST-like simulator: survey planning
(visits, pointings, catalogues) happens elsewhere and hands over a
`SourceTable`, an astropy WCS, a `PsfModel` and a `NoiseModel`;
`render_image` returns what a processed Rubin image holds: a
background-subtracted image in nJy, its variance, an afw-style mask and
the true PSF on a grid of positions.

Conventions
-----------
* Array axes are ``(y, x)``; pixel coordinates are astropy's 0-based
  array coordinates, where the centre of pixel ``[j, i]`` is ``(i, j)``.
  GalSim stamps are given bounds in these same coordinates (GalSim
  allows any origin), so no 1-based offset enters anywhere.
* Shapes (source shears, PSF ellipticity) are GalSim reduced shears in
  the local sky frame ``(u, v)``: ``+u`` points West (decreasing RA),
  ``+v`` North. ``g1 > 0`` stretches East-West, ``g2 > 0`` along the
  North-West/South-East diagonal.
* Every object is drawn with GalSim's ``method='auto'`` (convolved with
  the pixel response) through the local Jacobian of the WCS at its
  position, so SIP distortion and rotation are honoured; a star is then
  exactly the image of the PSF stored in the `PsfGrid` at that place.

Modules
-------
`sources`
    `SourceTable`, the catalogue to draw.
`psf`
    `PsfModel` and the stamp sizes its wings call for.
`noise`
    `NoiseModel` and `expose`: noise, saturation and bleed trails.
`geometry`
    Source positions and local Jacobians through the WCS.
`draw`
    GalSim stamps: the noiseless model and the PSF grid.
`image`
    `render_image` and its `RenderResult`.

Everything public is re-exported here, so callers import from
``recreate.simulate.render`` and need not know the layout.
"""

from recreate.simulate.render.draw import draw_model, draw_psf_grid
from recreate.simulate.render.geometry import (
    local_jacobians,
    source_positions,
)
from recreate.simulate.render.image import RenderResult, render_image
from recreate.simulate.render.noise import NoiseModel, expose
from recreate.simulate.render.psf import (
    MAX_STAMP_RADIUS,
    MIN_STAMP_RADIUS_FWHM,
    WING_THRESHOLD_NJY,
    PsfModel,
)
from recreate.simulate.render.sources import (
    GALAXY_TRUNCATION_HLR,
    SERSIC_N_RANGE,
    FloatArray,
    SourceTable,
)

__all__ = [
    "GALAXY_TRUNCATION_HLR",
    "MAX_STAMP_RADIUS",
    "MIN_STAMP_RADIUS_FWHM",
    "SERSIC_N_RANGE",
    "WING_THRESHOLD_NJY",
    "FloatArray",
    "NoiseModel",
    "PsfModel",
    "RenderResult",
    "SourceTable",
    "draw_model",
    "draw_psf_grid",
    "expose",
    "local_jacobians",
    "render_image",
    "source_positions",
]
