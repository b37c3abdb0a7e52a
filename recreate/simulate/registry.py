"""The registry side of a simulated repository: dimensions and types.

Inserts what DP1's registry holds for difference imaging, with the sky
regions that make spatial queries work: the instrument, its detectors,
physical filters and day_obs; visits with their regions and one
``visit_detector_region`` per detector; the skymap with its tracts and
patches (outer regions, as Rubin registers them). Also registers the
dataset types, and ingests files written in the DP1 layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recreate.pipeline.recipes import RECIPES
from recreate.simulate.coverage import detector_corners_sky
from recreate.simulate.instrument import INSTRUMENT, PHYSICAL_FILTERS
from recreate.simulate.scene import visit_wcs
from recreate.simulate.survey import EXPOSURE_TIME, SurveyPlan, Visit

RUN = "sim/run"
FORMATTER = "recreate.io.butler_formatter.ExposureFormatter"
#: ``lsst.images``' Butler formatter, for its storage classes.
LSST_IMAGES_FORMATTER = "lsst.images.formatters.GenericFormatter"
VISIT_IMAGE = "visit_image"
TEMPLATE_COADD = "template_coadd"
DIFFERENCE_IMAGE = "difference_image"
#: The releases a repository can imitate: DP1 stores afw ExposureF visit
#: images, DP2 ``lsst.images`` VisitImages (and declares its difference
#: images as DifferenceImages, which it does not store). Both keep
#: template coadds as ExposureF.
RELEASES = tuple(RECIPES)
#: Storage class and formatter of each release's visit images.
VISIT_STORAGE = {
    "dp1": ("ExposureF", FORMATTER),
    "dp2": ("VisitImage", LSST_IMAGES_FORMATTER),
}
TRUTH = "injection_truth"
SKYMAP = "skyMap"
CONFIG = "simulation_config"


def create_butler(root: Path) -> Any:
    """Create an SQLite-registry, file-datastore Butler repository.

    Parameters
    ----------
    root
        Directory of the new repository.

    Returns
    -------
    butler
        A writeable Butler whose default run is `RUN`.
    """
    from lsst.daf.butler import Butler

    root.mkdir(parents=True, exist_ok=True)
    Butler.makeRepo(str(root))
    return Butler.from_config(str(root), writeable=True, run=RUN)


def register_dimensions(butler: Any, plan: SurveyPlan) -> None:
    """Insert the instrument, visits, skymap and their sky regions.

    Parameters
    ----------
    butler
        A writeable Butler.
    plan
        The survey plan whose dimensions to insert.
    """
    registry = butler.registry
    camera = plan.preset.camera
    registry.insertDimensionData(
        "instrument",
        {
            "name": INSTRUMENT,
            "detector_max": len(camera.detectors),
            "visit_max": 10**14,
            "exposure_max": 10**14,
            "visit_system": 0,
            "class_name": "recreate.simulate.instrument.Camera",
        },
    )
    registry.insertDimensionData(
        "physical_filter",
        *[
            {"instrument": INSTRUMENT, "name": PHYSICAL_FILTERS[b], "band": b}
            for b in plan.preset.bands
        ],
    )
    registry.insertDimensionData(
        "detector",
        *[
            {
                "instrument": INSTRUMENT,
                "id": d,
                "full_name": camera.detector_name(d),
                "raft": "R22",
                "name_in_raft": camera.detector_name(d)[4:],
                "purpose": "SCIENCE",
            }
            for d in camera.detectors
        ],
    )
    for day_obs in sorted({v.day_obs for v in plan.visits}):
        registry.insertDimensionData(
            "day_obs", {"instrument": INSTRUMENT, "id": day_obs}
        )
    for visit in plan.visits:
        _register_visit(registry, plan, visit)
    _register_skymap(registry, plan)


def _register_visit(registry: Any, plan: SurveyPlan, visit: Visit) -> None:
    """Insert one visit and its detectors' regions."""
    from lsst.sphgeom import ConvexPolygon

    camera = plan.preset.camera
    shape = (camera.height, camera.width)
    corners = {
        d: detector_corners_sky(visit_wcs(plan, visit, d), shape)
        for d in camera.detectors
    }
    every_corner = np.concatenate(list(corners.values()))
    registry.insertDimensionData(
        "visit",
        {
            "instrument": INSTRUMENT,
            "id": visit.visit,
            "name": str(visit.visit),
            "physical_filter": visit.physical_filter,
            "day_obs": visit.day_obs,
            "seq_num": visit.visit % 100000,
            "exposure_time": EXPOSURE_TIME,
            "target_name": "ECDFS",
            "observation_reason": "science",
            "science_program": "simulated",
            "region": ConvexPolygon.convexHull(_unit_vectors(every_corner)),
            "timespan": _exposure_timespan(visit),
        },
    )
    registry.insertDimensionData(
        "visit_detector_region",
        *[
            {
                "instrument": INSTRUMENT,
                "visit": visit.visit,
                "detector": d,
                "region": ConvexPolygon(_unit_vectors(c)),
            }
            for d, c in corners.items()
        ],
    )


def _exposure_timespan(visit: Visit) -> Any:
    """Return a visit's exposure as a Butler timespan (TAI).

    The plan's ``mjd`` is the middle of the exposure (the files'
    DATE-AVG), as in DP1's visit records.
    """
    from astropy.time import Time, TimeDelta
    from lsst.daf.butler import Timespan

    middle = Time(visit.mjd, format="mjd", scale="tai")
    half = TimeDelta(EXPOSURE_TIME / 2.0, format="sec")
    return Timespan(begin=middle - half, end=middle + half)


def _register_skymap(registry: Any, plan: SurveyPlan) -> None:
    """Insert the skymap, its tracts and patches with their regions."""
    from lsst.sphgeom import ConvexPolygon

    skymap = plan.skymap
    geom = skymap.geometry
    n = geom.patches_per_side
    registry.insertDimensionData(
        "skymap",
        {
            "name": skymap.name,
            "hash": repr(sorted(skymap.to_dict().items())).encode(),
            "tract_max": len(skymap.tracts),
            "patch_nx_max": n,
            "patch_ny_max": n,
        },
    )
    for tract in skymap:
        # Rubin registers a tract's and a patch's outer regions.
        outer = geom.tract_inner + 2 * geom.patch_border
        lo = -geom.patch_border - 0.5
        xs = np.array([lo, lo + outer, lo + outer, lo])
        ys = np.array([lo, lo, lo + outer, lo + outer])
        ra, dec = tract.wcs().pixel_to_world_values(xs, ys)
        registry.insertDimensionData(
            "tract",
            {
                "skymap": skymap.name,
                "id": tract.tract_id,
                "region": ConvexPolygon(
                    _unit_vectors(np.column_stack([ra, dec]))
                ),
            },
        )
        registry.insertDimensionData(
            "patch",
            *[
                {
                    "skymap": skymap.name,
                    "tract": tract.tract_id,
                    "id": p,
                    "cell_x": p % n,
                    "cell_y": p // n,
                    "region": ConvexPolygon(
                        _unit_vectors(tract.patch_corners_sky(p))
                    ),
                }
                for p in range(n * n)
            ],
        )


def _unit_vectors(radec: npt.NDArray[np.float64]) -> list[Any]:
    """Return sphgeom unit vectors of (ra, dec) rows in degrees."""
    from lsst.sphgeom import LonLat, UnitVector3d

    return [UnitVector3d(LonLat.fromDegrees(ra, dec)) for ra, dec in radec]


def register_dataset_types(butler: Any, release: str = "dp1") -> None:
    """Register a release's dataset types and the simulation's extras.

    Parameters
    ----------
    butler
        A writeable Butler.
    release
        ``dp1`` or ``dp2`` (`RELEASES`): the storage classes.
    """
    from lsst.daf.butler import DatasetType

    universe = butler.dimensions
    visit = ("instrument", "visit", "detector")
    types = [
        (VISIT_IMAGE, visit, VISIT_STORAGE[release][0]),
        (TEMPLATE_COADD, ("skymap", "tract", "patch", "band"), "ExposureF"),
        (TRUTH, ("instrument", "visit"), "AstropyTable"),
        (SKYMAP, ("skymap",), "StructuredDataDict"),
        (CONFIG, (), "StructuredDataDict"),
    ]
    if release == "dp2":
        types.append((DIFFERENCE_IMAGE, visit, "DifferenceImage"))
    for name, dimensions, storage_class in types:
        butler.registry.registerDatasetType(
            DatasetType(name, dimensions, storage_class, universe=universe)
        )


def ingest_files(
    butler: Any,
    dataset_type: str,
    files: list[tuple[Path, dict[str, int | str]]],
    formatter: str = FORMATTER,
) -> int:
    """Move files into the repository as datasets.

    Parameters
    ----------
    butler
        A writeable Butler.
    dataset_type
        Name of a registered dataset type.
    files
        ``(path, data_id)`` pairs; the files are moved, not copied.
    formatter
        The files' Butler formatter (DP1 layout by default).

    Returns
    -------
    count
        The number of datasets ingested.
    """
    from lsst.daf.butler import DatasetRef, FileDataset

    registered = butler.get_dataset_type(dataset_type)
    datasets = [
        FileDataset(
            path=str(path),
            refs=[
                DatasetRef(
                    registered,
                    butler.registry.expandDataId(**data_id),
                    run=RUN,
                )
            ],
            formatter=formatter,
        )
        for path, data_id in files
    ]
    if datasets:
        butler.ingest(*datasets, transfer="move")
    return len(datasets)
