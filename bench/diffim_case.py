"""The difference-imaging benchmark's case: one detector rendered to files.

One full-size (``comcam``) visit-detector and the template patches that
overlap it are rendered in memory with the simulator and written as
files in the DP1 layout, named as the Butler names them, so that reading
them is real I/O through their URIs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recreate.butler import DatasetHandle, DiffimInputs
from recreate.io import write_dp1
from recreate.simulate.catalog import (
    StaticSky,
    draw_static_sky,
    draw_transients,
)
from recreate.simulate.coverage import detector_corners_sky
from recreate.simulate.instrument import INSTRUMENT
from recreate.simulate.presets import get_preset
from recreate.simulate.scene import (
    TRUTH_COLUMNS,
    render_template_patch,
    render_visit_detector,
    template_footprints,
    visit_wcs,
)
from recreate.simulate.survey import SurveyPlan, Visit, plan_survey

#: How many times the preset's transients the benchmark injects.
TRANSIENT_FACTOR = 5

#: Planes that flag pixels no measurement should trust.
FLAGGED = ("BAD", "SAT", "CR", "INTRP", "NO_DATA", "EDGE", "SAT_TEMPLATE")


@dataclass(frozen=True, eq=False)
class Case:
    """A science image, its patches, and the truth to score against."""

    plan: SurveyPlan
    sky: StaticSky
    science_path: Path
    patch_paths: list[Path]
    truth: list[dict[str, Any]]
    model: npt.NDArray[np.float32]
    detector: int
    found: DiffimInputs
    visit: Visit
    #: ``(y, x)`` of the science pixels holding charge of a cosmic ray
    #: the simulator's repair missed (not noise, not in ``model``).
    cosmic_ray_remnants: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]


def build_case(
    workdir: Path, preset: str = "comcam", seed: int = 1, detector: int = 4
) -> Case:
    """Render one visit-detector and its patches to files in ``workdir``."""
    # Five times the preset's transients: about a hundred land on the
    # detector at S/N > 20, so the pull width is known to +-0.07 rather
    # than +-0.17 (what the preset's ~21 would give).
    base = get_preset(preset)
    plan = plan_survey(
        replace(base, transients=TRANSIENT_FACTOR * base.transients), seed
    )
    sky, transients = draw_static_sky(plan), draw_transients(plan)
    visit = plan.visits_in("r")[1]
    rendered = render_visit_detector(plan, sky, transients, visit, detector)
    science_path = workdir / "science.fits"
    write_dp1(rendered.exposure, science_path, compress=False)
    footprints = template_footprints(plan, "r")
    camera = plan.preset.camera
    corners = detector_corners_sky(
        visit_wcs(plan, visit, detector), (camera.height, camera.width)
    )
    patch_paths = []
    for tract in plan.skymap:
        for patch in tract.patches_overlapping(corners[:, 0], corners[:, 1]):
            exposure = render_template_patch(
                plan, sky, "r", tract, patch, footprints
            )
            if exposure is None:
                continue
            path = workdir / f"patch_{tract.tract_id}_{patch}.fits"
            write_dp1(exposure, path, compress=False)
            patch_paths.append(path)
    truth = [
        dict(zip(TRUTH_COLUMNS, row, strict=True)) for row in rendered.truth
    ]
    found = _as_butler_inputs(visit, detector, science_path, patch_paths)
    rays = rendered.cosmic_rays
    remnants = (
        (rays.hit_y[rays.left_in_image], rays.hit_x[rays.left_in_image])
        if rays is not None
        else (np.zeros(0, np.intp), np.zeros(0, np.intp))
    )
    return Case(
        plan,
        sky,
        science_path,
        patch_paths,
        truth,
        rendered.model,
        detector,
        found,
        visit,
        remnants,
    )


def _as_butler_inputs(
    visit: Visit, detector: int, science_path: Path, patch_paths: list[Path]
) -> DiffimInputs:
    """Name the files as the Butler names a visit image and its patches.

    The service reads inputs through their URIs; so does the benchmark.
    """

    def handle(dataset_type: str, path: Path) -> DatasetHandle:
        return DatasetHandle(
            dataset_type=dataset_type,
            dataset_id=str(uuid.uuid5(uuid.NAMESPACE_URL, path.as_uri())),
            run="bench",
            data_id={"instrument": INSTRUMENT},
            uri=path.as_uri(),
        )

    return DiffimInputs(
        instrument=INSTRUMENT,
        visit=visit.visit,
        detector=detector,
        band=visit.band,
        physical_filter=visit.physical_filter,
        day_obs=visit.day_obs,
        visit_image=handle("visit_image", science_path),
        templates=tuple(handle("template_coadd", p) for p in patch_paths),
    )
