"""The simulated sky: static stars and galaxies, and what varies.

Static sources follow the counts used in ``shared/simulation-notes.md``
(stars r = 15-25.5 with dN/dm ~ 10^(0.12 m), galaxies r = 17-25.5 with
dN/dm ~ 10^(0.33 m), 70% exponential and 30% de Vaucouleurs). On top of
them the simulator injects what a difference image exists to find:

* transients, absent from the template, with a rise-and-fall light curve;
* variable stars, at their mean flux in the template;
* moving objects, absent from the template, in a different place in
  every visit.

Their per-visit positions and fluxes are the truth table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.simulate.survey import SurveyPlan, Visit, derive_seed

#: Colour terms: m_band = m_r + colour * COLOUR_SLOPE[band].
COLOUR_SLOPE = {"u": 2.2, "g": 1.0, "r": 0.0, "i": -0.45, "z": -0.7, "y": -0.8}

KIND_TRANSIENT = "transient"
KIND_VARIABLE = "variable"
KIND_MOVER = "mover"


@dataclass(frozen=True)
class StaticSky:
    """Static sources over the whole simulated area (columns of arrays)."""

    ra: npt.NDArray[np.float64]
    dec: npt.NDArray[np.float64]
    mag_r: npt.NDArray[np.float64]
    colour: npt.NDArray[np.float64]
    is_galaxy: npt.NDArray[np.bool_]
    half_light_radius: npt.NDArray[np.float64]
    sersic_n: npt.NDArray[np.float64]
    g1: npt.NDArray[np.float64]
    g2: npt.NDArray[np.float64]
    variability: npt.NDArray[np.float64]  # amplitude in mag, 0 = steady
    phase: npt.NDArray[np.float64]
    period: npt.NDArray[np.float64]  # days

    def __len__(self) -> int:
        """Return the number of sources."""
        return len(self.ra)

    def mean_flux(self, band: str) -> npt.NDArray[np.float64]:
        """Return each source's mean (template) flux in nJy."""
        mag = self.mag_r + self.colour * COLOUR_SLOPE[band]
        return 10 ** ((31.4 - mag) / 2.5)

    def flux_at(self, band: str, mjd: float) -> npt.NDArray[np.float64]:
        """Return each source's flux in nJy at a time.

        Variable stars follow a sinusoid in magnitude about their mean.
        """
        delta = self.variability * np.sin(
            2 * np.pi * mjd / self.period + self.phase
        )
        return self.mean_flux(band) * 10 ** (-delta / 2.5)


@dataclass(frozen=True)
class Transients:
    """Transients: fixed positions, Gaussian light curves in time."""

    ra: npt.NDArray[np.float64]
    dec: npt.NDArray[np.float64]
    peak_mag: npt.NDArray[np.float64]
    peak_mjd: npt.NDArray[np.float64]
    width_days: npt.NDArray[np.float64]

    def flux_at(self, mjd: float) -> npt.NDArray[np.float64]:
        """Return each transient's flux in nJy at a time (any band)."""
        peak = 10 ** ((31.4 - self.peak_mag) / 2.5)
        return peak * np.exp(
            -0.5 * ((mjd - self.peak_mjd) / self.width_days) ** 2
        )


def area_bounds(plan: SurveyPlan) -> tuple[float, float, float, float]:
    """Return (ra_min, ra_max, dec_min, dec_max) covering every visit."""
    camera = plan.preset.camera
    half = (1.5 * camera.width + camera.gap) * camera.pixel_scale / 3600.0
    # Margin: rotation, and the template patches' borders beyond the
    # visits. Half a field more on each side is plenty.
    margin = 1.5 * half
    cos_dec = math.cos(math.radians(plan.field_dec))
    ras = [v.ra for v in plan.visits]
    decs = [v.dec for v in plan.visits]
    return (
        min(ras) - margin / cos_dec,
        max(ras) + margin / cos_dec,
        min(decs) - margin,
        max(decs) + margin,
    )


def draw_static_sky(plan: SurveyPlan) -> StaticSky:
    """Draw the static stars and galaxies over the survey area.

    Parameters
    ----------
    plan
        The survey plan; its preset sets the densities.

    Returns
    -------
    sky
        Stars first, then galaxies.
    """
    rng = np.random.default_rng(derive_seed(plan.seed, "static-sky"))
    ra_min, ra_max, dec_min, dec_max = area_bounds(plan)
    preset = plan.preset
    cos_dec = math.cos(math.radians(plan.field_dec))
    pixel_area = (preset.camera.pixel_scale / 3600.0) ** 2
    area_pix = (ra_max - ra_min) * cos_dec * (dec_max - dec_min) / pixel_area
    n_stars = rng.poisson(preset.stars_per_mpix * area_pix / 1e6)
    n_gals = rng.poisson(preset.galaxies_per_mpix * area_pix / 1e6)
    n = n_stars + n_gals
    is_galaxy = np.arange(n) >= n_stars
    mag = np.concatenate(
        [
            _power_law_mags(rng, n_stars, 15.0, 25.5, 0.12),
            _power_law_mags(rng, n_gals, 17.0, 25.5, 0.33),
        ]
    )
    # Galaxy size-magnitude relation with log-normal scatter: about 0.6"
    # at r = 22, smaller when fainter.
    radius = 0.6 * 10 ** (-0.1 * (mag - 22.0) + rng.normal(0, 0.15, n))
    radius = np.where(is_galaxy, np.clip(radius, 0.15, 4.0), 0.0)
    sersic = np.where(rng.uniform(size=n) < 0.7, 1.0, 4.0)
    shear = np.clip(rng.rayleigh(0.2, n), 0.0, 0.6)
    angle = rng.uniform(0, np.pi, n)
    variable = (~is_galaxy) & (rng.uniform(size=n) < preset.variables_fraction)
    return StaticSky(
        ra=rng.uniform(ra_min, ra_max, n) % 360.0,
        dec=rng.uniform(dec_min, dec_max, n),
        mag_r=mag,
        colour=np.where(
            is_galaxy, rng.uniform(0.4, 1.0, n), rng.uniform(0.2, 1.4, n)
        ),
        is_galaxy=is_galaxy,
        half_light_radius=radius,
        sersic_n=np.where(is_galaxy, sersic, 0.0),
        g1=np.where(is_galaxy, shear * np.cos(2 * angle), 0.0),
        g2=np.where(is_galaxy, shear * np.sin(2 * angle), 0.0),
        variability=np.where(variable, rng.uniform(0.1, 0.5, n), 0.0),
        phase=rng.uniform(0, 2 * np.pi, n),
        period=rng.uniform(0.3, 20.0, n),
    )


def draw_transients(plan: SurveyPlan) -> Transients:
    """Draw transients inside the area the core visits share.

    They peak during the survey, bright enough to be found (r 19-22.5).
    """
    rng = np.random.default_rng(derive_seed(plan.seed, "transients"))
    n = plan.preset.transients
    camera = plan.preset.camera
    half = (1.5 * camera.width) * camera.pixel_scale / 3600.0
    cos_dec = math.cos(math.radians(plan.field_dec))
    mjds = [v.mjd for v in plan.visits]
    return Transients(
        ra=plan.field_ra + rng.uniform(-half, half, n) / cos_dec,
        dec=plan.field_dec + rng.uniform(-half, half, n),
        peak_mag=rng.uniform(19.0, 22.5, n),
        peak_mjd=rng.uniform(min(mjds), max(mjds) + 1.0, n),
        width_days=rng.uniform(3.0, 12.0, n),
    )


def draw_movers(
    plan: SurveyPlan, visit: Visit
) -> tuple[npt.NDArray[np.float64], ...]:
    """Draw one visit's moving objects: (ra, dec, flux in nJy).

    Each is seen once, somewhere in the visit's field: main-belt rates
    (~0.25 deg/day) move them by a detector or more between visits, so
    they never repeat in the same place, and they are not in templates.
    """
    rng = np.random.default_rng(derive_seed(plan.seed, "movers", visit.visit))
    n = plan.preset.movers_per_visit
    camera = plan.preset.camera
    half = (1.5 * camera.width) * camera.pixel_scale / 3600.0
    cos_dec = math.cos(math.radians(visit.dec))
    mags = rng.uniform(19.5, 22.0, n)
    return (
        visit.ra + rng.uniform(-half, half, n) / cos_dec,
        visit.dec + rng.uniform(-half, half, n),
        10 ** ((31.4 - mags) / 2.5),
    )


def _power_law_mags(
    rng: np.random.Generator, n: int, lo: float, hi: float, slope: float
) -> npt.NDArray[np.float64]:
    """Draw magnitudes with dN/dm proportional to 10^(slope m)."""
    u = rng.uniform(size=n)
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + u * (b - a)) / slope
