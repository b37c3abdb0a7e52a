"""Sizes of the simulated repositories: ``ci``, ``demo`` and ``comcam``.

``comcam`` is full size (4072x4000 detectors, 3400-px patches). The
smaller presets shrink the detectors and the patches by the same factor,
so every detector still straddles 2-3 patches per axis, and keep the
pixel scale, the depths and the seeing of DP1.
"""

from __future__ import annotations

from dataclasses import dataclass

from recreate.errors import InvalidRequestError
from recreate.simulate import PRESET_NAMES
from recreate.simulate.instrument import Camera
from recreate.skymap import PatchGeometry


@dataclass(frozen=True)
class Preset:
    """Everything that sizes a simulated repository.

    Parameters
    ----------
    name
        Preset name.
    camera
        Detector geometry.
    geometry
        Skymap patch geometry.
    bands
        Bands observed, each with ``visits_per_band`` science visits.
    visits_per_band
        Science visits per band, of which ``edge_visits`` are pointed off
        the template's footprint to exercise partial coverage.
    template_inputs
        Number of visits stacked into a template: sets its depth.
    stars_per_mpix, galaxies_per_mpix
        Source densities on the sky, per million pixels.
    transients, variables_fraction, movers_per_visit
        Injected variability: transients per field, the fraction of stars
        that vary, moving objects per visit.
    compress
        Write tile-compressed (lossless) FITS, as DP1 does.
    """

    name: str
    camera: Camera
    geometry: PatchGeometry
    bands: tuple[str, ...]
    visits_per_band: int
    edge_visits: int
    template_inputs: int
    stars_per_mpix: float
    galaxies_per_mpix: float
    transients: int
    variables_fraction: float
    movers_per_visit: int
    compress: bool = True


PRESETS = {
    "ci": Preset(
        name="ci",
        camera=Camera(width=400, height=392, gap=6),
        geometry=PatchGeometry(patch_inner=300, patch_border=20),
        bands=("r",),
        visits_per_band=8,
        edge_visits=3,
        template_inputs=12,
        # Enough that even the worst-seeing visit keeps 3 kernel stars
        # through v29's size-extendedness cut on a 400x392 detector.
        stars_per_mpix=800.0,
        galaxies_per_mpix=400.0,
        transients=12,
        variables_fraction=0.05,
        movers_per_visit=2,
        compress=False,
    ),
    "demo": Preset(
        name="demo",
        camera=Camera(width=1018, height=1000, gap=15),
        geometry=PatchGeometry(patch_inner=750, patch_border=50),
        bands=("g", "r"),
        visits_per_band=8,
        edge_visits=3,
        template_inputs=12,
        stars_per_mpix=250.0,
        galaxies_per_mpix=220.0,
        transients=25,
        variables_fraction=0.03,
        movers_per_visit=3,
    ),
    "comcam": Preset(
        name="comcam",
        camera=Camera(),
        geometry=PatchGeometry(),
        bands=("r",),
        visits_per_band=6,
        edge_visits=3,
        template_inputs=12,
        stars_per_mpix=94.0,
        galaxies_per_mpix=220.0,
        # Many, so that one detector holds enough for flux statistics.
        transients=200,
        variables_fraction=0.02,
        movers_per_visit=5,
    ),
}

if tuple(sorted(PRESETS)) != PRESET_NAMES:  # pragma: no cover - a typo
    msg = f"PRESET_NAMES {PRESET_NAMES} must list {sorted(PRESETS)}"
    raise AssertionError(msg)


def get_preset(name: str) -> Preset:
    """Return a preset by name.

    Raises
    ------
    InvalidRequestError
        If there is no preset of that name.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidRequestError(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None
