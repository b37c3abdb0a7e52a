"""The PSF model and the stamp sizes its wings call for.

`PsfModel` gives the PSF at any array position; the stamp helpers turn
its radial profile, a source's flux and the sky noise into the
half-width of the stamp that source is drawn on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import galsim
import numpy as np
import numpy.typing as npt

from recreate.simulate.render.sources import (
    GALAXY_TRUNCATION_HLR,
    FloatArray,
    SourceTable,
)

#: A stamp ends where the object's surface brightness falls below this
#: level, in nJy per pixel: about 0.05 of the sky noise of a 12-visit
#: r-band template, so the light left out is invisible pixel by pixel,
#: and bright stars get the large stamps their wings need. The level is
#: the same for every image: a star then loses the same fraction of its
#: light in the visit and in the template, as a real star loses none in
#: either. (A level tied to each image's own noise cut the noisier
#: visits' stars 1% shorter than the templates', a mismatch no matching
#: kernel can undo.)
WING_THRESHOLD_NJY = 0.2

#: Smallest stamp half-width, in PSF FWHMs (about 99 % of the light of a
#: Kolmogorov profile), so faint sources still carry a sensible stamp.
MIN_STAMP_RADIUS_FWHM = 4.0

#: Largest stamp half-width in pixels: beyond it the FFT cost grows for
#: a handful of very bright stars whose far wings no test can see.
MAX_STAMP_RADIUS = 256


@dataclass(frozen=True)
class PsfModel:
    """A PSF whose width varies smoothly across the detector.

    The FWHM at array position ``(x, y)`` of an image of shape
    ``(height, width)`` is ``fwhm * (1 + a*u + b*v + c*(u**2 + v**2))``
    with ``u = 2x/(width-1) - 1`` and ``v = 2y/(height-1) - 1`` (so both
    run over [-1, 1] across the array), ``(a, b) = gradient`` and
    ``c = curvature``.

    Parameters
    ----------
    fwhm
        FWHM in arcsec at the array centre, before the pixel response.
    gradient
        Fractional FWHM change per unit of ``u`` and of ``v``.
    curvature
        Fractional FWHM change per unit of ``u**2 + v**2``.
    g1, g2
        Reduced shear of the PSF, the same everywhere, in the sky frame
        of the package docstring. The shear keeps the area, so ``fwhm``
        is the geometric mean of the major- and minor-axis widths.
    profile
        ``"kolmogorov"`` (atmospheric seeing) or ``"moffat"``.
    moffat_beta
        Moffat index, used only for the Moffat profile.

    Raises
    ------
    ValueError
        If ``fwhm`` is not positive, the shear modulus is >= 1, the
        profile is unknown or ``moffat_beta`` is <= 1.
    """

    fwhm: float
    gradient: tuple[float, float] = (0.0, 0.0)
    curvature: float = 0.0
    g1: float = 0.0
    g2: float = 0.0
    profile: Literal["kolmogorov", "moffat"] = "kolmogorov"
    moffat_beta: float = 3.5

    def __post_init__(self) -> None:
        """Check the parameters."""
        if not self.fwhm > 0:
            raise ValueError(f"PSF fwhm {self.fwhm} must be > 0")
        if not math.hypot(self.g1, self.g2) < 1:
            raise ValueError(f"PSF shear ({self.g1}, {self.g2}) must be < 1")
        if self.profile not in {"kolmogorov", "moffat"}:
            raise ValueError(f"unknown PSF profile {self.profile!r}")
        if not self.moffat_beta > 1:
            raise ValueError(f"Moffat beta {self.moffat_beta} must be > 1")

    def fwhm_at(self, x: float, y: float, shape: tuple[int, int]) -> float:
        """Return the FWHM in arcsec at array position ``(x, y)``.

        Raises
        ------
        ValueError
            If the model gives a non-positive FWHM there.
        """
        widths = self.fwhm_at_positions(np.array([x]), np.array([y]), shape)
        return float(widths[0])

    def fwhm_at_positions(
        self, x: FloatArray, y: FloatArray, shape: tuple[int, int]
    ) -> FloatArray:
        """Return the FWHM in arcsec at many array positions at once.

        Raises
        ------
        ValueError
            If the model gives a non-positive FWHM at any of them.
        """
        u, v = _unit_coordinates(x, y, shape)
        a, b = self.gradient
        factor = 1.0 + a * u + b * v + self.curvature * (u * u + v * v)
        if np.any(factor <= 0):
            raise ValueError(
                "PSF model gives a non-positive FWHM on this image: "
                f"gradient {self.gradient}, curvature {self.curvature}"
            )
        return np.asarray(self.fwhm * factor, dtype=np.float64)

    def galsim_profile(
        self, x: float, y: float, shape: tuple[int, int]
    ) -> galsim.GSObject:
        """Return the unit-flux PSF at ``(x, y)`` in sky units (arcsec).

        Raises
        ------
        ValueError
            If the model gives a non-positive FWHM there.
        """
        return self.profile_of_width(self.fwhm_at(x, y, shape))

    def profile_of_width(self, fwhm: float) -> galsim.GSObject:
        """Return the unit-flux PSF of a given FWHM, sheared as specified."""
        if self.profile == "moffat":
            base = galsim.Moffat(beta=self.moffat_beta, fwhm=fwhm)
        else:
            base = galsim.Kolmogorov(fwhm=fwhm)
        if self.g1 == 0.0 and self.g2 == 0.0:
            return base
        return base.shear(g1=self.g1, g2=self.g2)


def _unit_coordinates(
    x: FloatArray, y: FloatArray, shape: tuple[int, int]
) -> tuple[FloatArray, FloatArray]:
    """Map array positions to ``(u, v)`` in [-1, 1] across the array."""
    height, width = shape
    u = 2.0 * x / max(width - 1, 1) - 1.0
    v = 2.0 * y / max(height - 1, 1) - 1.0
    return u, v


def _stamp_radii(
    sources: SourceTable,
    indices: npt.NDArray[np.intp],
    *,
    scales: FloatArray,
    fwhms: FloatArray,
    psf: PsfModel,
    threshold: float,
) -> npt.NDArray[np.int64]:
    """Return each source's stamp half-width in pixels.

    The half-width is where the PSF wing of the source's whole flux
    falls below ``threshold`` nJy per pixel (at least
    `MIN_STAMP_RADIUS_FWHM` FWHMs), plus the extent of a galaxy's
    truncated, sheared profile, capped at `MAX_STAMP_RADIUS`. ``scales``
    are the local pixel scales (arcsec) and ``fwhms`` the PSF FWHMs
    (arcsec) at the sources.
    """
    flux = sources.flux[indices]
    # Per-pixel value of the wing at radius r: flux * I1(r/f) / f^2 * A,
    # with I1 the surface brightness of a unit-flux, unit-FWHM PSF.
    wanted = threshold * fwhms**2 / (flux * scales**2)
    reach = _unit_psf_radius_below(psf, wanted) * fwhms
    reach = np.maximum(reach, MIN_STAMP_RADIUS_FWHM * fwhms)
    galaxy = sources.is_galaxy[indices]
    shear = np.hypot(sources.g1[indices], sources.g2[indices])
    major = np.sqrt((1 + shear) / (1 - np.minimum(shear, 0.99)))
    extent = GALAXY_TRUNCATION_HLR * sources.half_light_radius[indices] * major
    reach = reach + np.where(galaxy, extent, 0.0)
    radii = np.ceil(reach / scales).astype(np.int64)
    return np.minimum(radii, MAX_STAMP_RADIUS)


def _unit_psf_radius_below(psf: PsfModel, level: FloatArray) -> FloatArray:
    """Return radii (in FWHMs) where the unit PSF drops below ``level``.

    ``level`` is a surface brightness of the unit-flux, unit-FWHM PSF in
    arcsec^-2; the profile is sampled once, log-spaced to 300 FWHMs.
    """
    rho = np.geomspace(0.05, 300.0, 160)
    unit = psf.profile_of_width(1.0)
    brightness = np.array(
        [unit.xValue(galsim.PositionD(float(r), 0.0)) for r in rho]
    )
    # GalSim returns 0 beyond the radius it would ever draw; stop there.
    kept = brightness > 0
    rho, brightness = rho[kept], np.minimum.accumulate(brightness[kept])
    # The profile now never rises: interpolate log(rho) on
    # -log(brightness), which never falls, as np.interp needs.
    log_level = np.log(np.maximum(level, 1e-300))
    return np.exp(np.interp(-log_level, -np.log(brightness), np.log(rho)))
