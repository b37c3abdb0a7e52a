"""Plan a simulated survey: a field, its tracts, visits and seeing.

Everything is drawn from one seeded generator, so the same preset and
seed give the same plan. The plan follows DP1's observing pattern (see
``shared/simulation-notes.md`` section 3): one field, a few nights of 30 s
visits per band with random translational dithers and ~1 degree rotator
dithers, per-visit seeing drawn around the band's DP1 median, and
templates stacked from the visits with the best seeing.

Template coverage follows DP1 too: most visit-detectors are fully covered
by the template, because the template is built from the same dithered
pointings. A few "edge" visits are pointed partly off the template's
footprint so that some detectors are partly covered, a few under the
pipeline's 20% and 10% thresholds.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from recreate.simulate.instrument import BANDS, PHYSICAL_FILTERS
from recreate.simulate.presets import Preset
from recreate.skymap import SkyMap, Tract

#: ECDFS, DP1's richest field (RA, Dec in degrees).
FIELD_CENTRE = (53.16, -28.10)
FIRST_NIGHT_MJD = 60623.0  # 2024-11-09, the first DP1 night
EXPOSURE_TIME = 30.0
SKYMAP_NAME = "sim_cells_v1"

# Coverage fractions of the outer detector column (or row) that the
# edge visits aim at: one partial, one under the 20% "expect failure"
# threshold and one under the 10% "no work" threshold.
EDGE_TARGET_COVERAGE = (0.55, 0.15, 0.06)


@dataclass(frozen=True)
class PsfSpec:
    """A visit's PSF: FWHM at the centre and its variation."""

    fwhm: float  # arcsec
    gradient: tuple[float, float]
    curvature: float
    g1: float
    g2: float


@dataclass(frozen=True)
class Visit:
    """One planned visit."""

    visit: int
    band: str
    day_obs: int
    mjd: float
    ra: float
    dec: float
    rotation: float
    psf: PsfSpec
    role: str  # "core" (template input) or "edge" (off the footprint)

    @property
    def physical_filter(self) -> str:
        """DP1 physical filter of the visit's band."""
        return PHYSICAL_FILTERS[self.band]


@dataclass(frozen=True)
class SurveyPlan:
    """The whole plan: skymap, visits and template seeing per band."""

    preset: Preset
    seed: int
    skymap: SkyMap
    visits: tuple[Visit, ...]
    template_fwhm: dict[str, float]
    field_ra: float
    field_dec: float

    def visits_in(self, band: str) -> list[Visit]:
        """Return the visits of one band, in visit order."""
        return [v for v in self.visits if v.band == band]

    def template_visits(self, band: str) -> list[Visit]:
        """Return the visits whose footprints the template covers."""
        return [v for v in self.visits_in(band) if v.role == "core"]


def derive_seed(seed: int, *parts: object) -> int:
    """Return a 63-bit seed for one item, derived from the master seed.

    A hash, not a running generator, so each image's seed does not
    depend on how many images were drawn before it, or in what order.
    """
    text = "/".join(str(part) for part in (seed, *parts))
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def plan_survey(preset: Preset, seed: int) -> SurveyPlan:
    """Draw the visits, tracts and seeing of a simulated survey.

    Parameters
    ----------
    preset
        Sizes of the repository.
    seed
        Master seed.

    Returns
    -------
    plan
        The survey plan.
    """
    rng = np.random.default_rng(derive_seed(seed, "survey"))
    field_ra, field_dec = FIELD_CENTRE
    skymap = _plan_skymap(preset, field_ra, field_dec)
    visits: list[Visit] = []
    template_fwhm: dict[str, float] = {}
    for band_index, band in enumerate(preset.bands):
        band_visits = _plan_band(preset, rng, band, band_index)
        visits.extend(band_visits)
        core = [v.psf.fwhm for v in band_visits if v.role == "core"]
        template_fwhm[band] = _template_fwhm(core, BANDS[band].median_seeing)
    return SurveyPlan(
        preset=preset,
        seed=seed,
        skymap=skymap,
        visits=tuple(visits),
        template_fwhm=template_fwhm,
        field_ra=field_ra,
        field_dec=field_dec,
    )


def _template_fwhm(visit_fwhms: list[float], band_median: float) -> float:
    """Return the PSF FWHM of a band's template, in arcsec.

    DP1 templates stack the best-seeing third of the visits, homogenised:
    about 0.15-0.25" sharper than the median visit. Never sharper than
    the best input.
    """
    scale = band_median / 1.11
    sharper = float(np.median(visit_fwhms)) - 0.2 * scale
    return max(sharper, min(visit_fwhms), 0.6 * scale)


def _plan_skymap(preset: Preset, ra: float, dec: float) -> SkyMap:
    """Place two abutting tracts so that the field touches both.

    The boundary between tract 0 and tract 1 runs half a detector inside
    the field's east edge, so the east column of detectors sees patches
    of both tracts, as DP1 detectors sometimes do.
    """
    geom = preset.geometry
    camera = preset.camera
    scale = geom.pixel_scale / 3600.0
    half_field = 1.5 * camera.width + camera.gap
    tract_half = geom.tract_inner / 2.0
    boundary_offset = half_field - 0.5 * camera.width  # pixels, east
    cos_dec = math.cos(math.radians(dec))
    ra0 = ra - (tract_half - boundary_offset) * scale / cos_dec
    # The second tract sits one tract width further east, less the patch
    # border, so the two overlap a little, as Rubin's tracts do.
    step = (geom.tract_inner - geom.patch_border) * scale / cos_dec
    tracts = [
        Tract(0, ra0 % 360.0, dec, geom),
        Tract(1, (ra0 + step) % 360.0, dec, geom),
    ]
    return SkyMap(SKYMAP_NAME, tracts, geom)


def _plan_band(
    preset: Preset, rng: np.random.Generator, band: str, band_index: int
) -> list[Visit]:
    """Draw one band's visits: core dithers, then edge pointings."""
    camera = preset.camera
    scale = camera.pixel_scale / 3600.0
    field_size = 3 * camera.width + 2 * camera.gap
    # DP1 dithers reach 0.2 deg on a 0.69 deg field: about 0.3 of it.
    # Keep a third of that so that the template footprint has a clear
    # edge that the edge visits can straddle by design.
    dither = 0.1 * field_size
    n_core = preset.visits_per_band - preset.edge_visits
    offsets = [
        (rng.uniform(-dither, dither), rng.uniform(-dither, dither))
        for _ in range(n_core)
    ]
    # The template's footprint ends where the outermost core visit ends:
    # an edge visit shifted past that by (1 - f) of a detector leaves a
    # fraction f of its outer column (or row) covered.
    max_dx = max(dx for dx, _ in offsets)
    min_dy = min(dy for _, dy in offsets)
    for k in range(preset.edge_visits):
        target = EDGE_TARGET_COVERAGE[k % len(EDGE_TARGET_COVERAGE)]
        # Alternate directions so the uncovered strips differ.
        if k % 2 == 0:
            offsets.append((max_dx + (1.0 - target) * camera.width, 0.0))
        else:
            offsets.append((0.0, min_dy - (1.0 - target) * camera.height))
    field_ra, field_dec = FIELD_CENTRE
    cos_dec = math.cos(math.radians(field_dec))
    median = BANDS[band].median_seeing
    visits = []
    for index, (dx, dy) in enumerate(offsets):
        night = band_index * 3 + index // 3
        day_obs = _day_obs(night)
        mjd = FIRST_NIGHT_MJD + night + 0.1 + 0.02 * (index % 3)
        visits.append(
            Visit(
                visit=day_obs * 100000 + 10 * band_index + index + 1,
                band=band,
                day_obs=day_obs,
                mjd=mjd,
                # Pixel x grows westward (RA decreases) in these WCSs.
                ra=(field_ra - dx * scale / cos_dec) % 360.0,
                dec=field_dec + dy * scale,
                rotation=float(rng.normal(0.0, 1.0)),
                psf=_draw_psf(rng, median),
                role="core" if index < n_core else "edge",
            )
        )
    return visits


def _draw_psf(rng: np.random.Generator, median: float) -> PsfSpec:
    """Draw a visit's seeing around the band median, within DP1's range."""
    # DP1 r: median 1.11", about 0.6-1.7": a log-normal of width 0.2.
    scale = median / 1.11
    drawn = median * np.exp(rng.normal(0.0, 0.2))
    fwhm = float(np.clip(drawn, 0.6 * scale, 1.7 * scale))
    return PsfSpec(
        fwhm=fwhm,
        gradient=(float(rng.normal(0, 0.03)), float(rng.normal(0, 0.03))),
        curvature=float(abs(rng.normal(0, 0.04))),
        g1=float(rng.normal(0, 0.01)),
        g2=float(rng.normal(0, 0.01)),
    )


def _day_obs(night: int) -> int:
    """Return YYYYMMDD of a night counted from the first DP1 night."""
    from astropy.time import Time

    date = Time(FIRST_NIGHT_MJD + night, format="mjd").datetime
    return date.year * 10000 + date.month * 100 + date.day
