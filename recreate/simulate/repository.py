"""Write a simulated survey as a real Butler repository.

The repository has what DP1's has for difference imaging: an SQLite
registry with the LSSTComCam-like instrument, its detectors, visits and
their sky regions, a skymap with tracts and patches and their regions,
and the datasets ``visit_image`` {instrument, visit, detector, band,
physical_filter, day_obs} and ``template_coadd`` {skymap, tract, patch,
band}, stored as files in the DP1 ``ExposureF`` layout. Beside them:
``injection_truth`` per visit (what the difference image should show),
``skyMap`` (the skymap's description) and ``simulation_config``.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from recreate import __version__
from recreate.errors import InvalidRequestError
from recreate.io import write_dp1
from recreate.io.lsst_images import write_visit_image
from recreate.simulate.catalog import (
    StaticSky,
    Transients,
    draw_static_sky,
    draw_transients,
)
from recreate.simulate.coverage import (
    coverage_fraction,
)
from recreate.simulate.instrument import INSTRUMENT
from recreate.simulate.presets import get_preset
from recreate.simulate.registry import (
    CONFIG,
    RELEASES,
    SKYMAP,
    TEMPLATE_COADD,
    TRUTH,
    VISIT_IMAGE,
    VISIT_STORAGE,
    create_butler,
    ingest_files,
    register_dataset_types,
    register_dimensions,
)
from recreate.simulate.scene import (
    TRUTH_COLUMNS,
    render_template_patch,
    render_visit_detector,
    template_footprints,
    visit_wcs,
)
from recreate.simulate.survey import SurveyPlan, Visit, plan_survey

Logger = Callable[[str], None]


@dataclass(frozen=True)
class SimulationResult:
    """What `simulate_repository` wrote."""

    root: Path
    visit_images: int
    template_patches: int
    truth_rows: int
    coverage: dict[str, float]


def simulate_repository(
    root: str | os.PathLike[str],
    preset: str = "ci",
    seed: int = 1,
    *,
    jobs: int = 1,
    log: Logger | None = None,
    release: str = "dp1",
) -> SimulationResult:
    """Simulate a survey and write it as a Butler repository.

    Parameters
    ----------
    root
        Directory of the new repository; it must not exist or be empty.
    preset
        ``ci``, ``demo`` or ``comcam``.
    seed
        Master seed: the same preset and seed give the same pixels.
    jobs
        Worker processes for rendering. Results do not depend on it.
    log
        Called with progress messages.
    release
        ``dp1`` (visit images as afw ExposureF files) or ``dp2`` (as
        ``lsst.images`` VisitImages, storage class ``VisitImage``, and a
        ``difference_image`` type of storage class ``DifferenceImage``).
        The pixels are the same; a repository's recipe defaults to its
        release's.

    Returns
    -------
    result
        Counts of what was written.

    Raises
    ------
    InvalidRequestError
        If the preset or release is unknown or the directory is not
        empty.
    """
    if release not in RELEASES:
        raise InvalidRequestError(
            f"unknown release {release!r}; choose one of {', '.join(RELEASES)}"
        )
    say = log or (lambda _message: None)
    plan = plan_survey(get_preset(preset), seed)
    root = Path(root).absolute()
    _check_empty(root)
    # Build beside the target and rename at the end, so that an
    # interrupted run never leaves a half-written repository behind.
    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(
        tempfile.mkdtemp(prefix="_partial_repository_", dir=root.parent)
    )
    try:
        counts = _write_repository(building, plan, jobs, say, release)
        if root.exists():
            root.rmdir()  # empty: checked above
        building.rename(root)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return SimulationResult(root, *counts)


def _write_repository(
    root: Path, plan: SurveyPlan, jobs: int, say: Logger, release: str
) -> tuple[int, int, int, dict[str, float]]:
    """Write the whole repository into ``root``; return its counts."""
    butler = create_butler(root)
    register_dimensions(butler, plan)
    register_dataset_types(butler, release)
    staging = root / "_staging"
    staging.mkdir()
    sky, transients = draw_static_sky(plan), draw_transients(plan)
    say(
        f"simulating preset {plan.preset.name!r} seed {plan.seed}: "
        f"{len(plan.visits)} visits x {len(plan.preset.camera.detectors)} "
        f"detectors, {len(sky)} static sources"
    )
    with _executor(jobs) as pool:
        n_visit_images, truth_rows = _write_visits(
            butler, pool, plan, (sky, transients), (staging, release), say
        )
        n_patches = _write_templates(butler, pool, plan, sky, staging, say)
    coverage = _coverage_by_detector(plan)
    butler.put(
        {
            "preset": plan.preset.name,
            "seed": plan.seed,
            "release": release,
            "code_version": __version__,
            "template_coverage": coverage,
        },
        CONFIG,
    )
    butler.put(plan.skymap.to_dict(), SKYMAP, skymap=plan.skymap.name)
    shutil.rmtree(staging)
    return n_visit_images, n_patches, truth_rows, coverage


def _check_empty(root: Path) -> None:
    """Refuse to write into a directory that already holds something."""
    if root.exists() and any(root.iterdir()):
        raise InvalidRequestError(
            f"repository directory {str(root)!r} is not empty; "
            "choose a new path or remove it first"
        )


def _executor(jobs: int) -> Executor:
    """Return a process pool, or an in-process one for ``jobs <= 1``."""
    if jobs > 1:
        # forkserver, not fork: the parent may already run numba or FFT
        # worker threads, and forking a multi-threaded process can
        # deadlock the child (Python 3.12 warns about it).
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    return _InlineExecutor()


class _InlineExecutor(Executor):
    """An executor that runs each task at once in this process."""

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Any,
        **_kwargs: Any,
    ) -> Iterator[Any]:
        """Apply ``fn`` lazily, in order."""
        return (fn(*args) for args in zip(*iterables, strict=True))


def _render_visit_file(
    plan: SurveyPlan,
    sky: StaticSky,
    transients: Transients,
    release: str,
    visit: Visit,
    detector: int,
    path: Path,
) -> list[tuple[object, ...]]:
    """Render and write one visit-detector; return its truth rows.

    DP1-like: the afw ExposureF layout; DP2-like: an ``lsst.images``
    VisitImage (losslessly compressed).
    """
    rendered = render_visit_detector(plan, sky, transients, visit, detector)
    if release == "dp2":
        write_visit_image(rendered.exposure, path)
    else:
        write_dp1(rendered.exposure, path, compress=plan.preset.compress)
    return rendered.truth


def _write_visits(
    butler: Any,
    pool: Executor,
    plan: SurveyPlan,
    sources: tuple[StaticSky, Transients],
    where: tuple[Path, str],
    say: Logger,
) -> tuple[int, int]:
    """Render every visit-detector, ingest the files and the truth.

    ``sources`` are the static sky and the transients; ``where`` the
    staging directory and the release whose layout to write.
    """
    sky, transients = sources
    staging, release = where
    detectors = list(plan.preset.camera.detectors)
    n_truth = 0
    for visit in plan.visits:
        paths = [staging / f"visit_{visit.visit}_{d}.fits" for d in detectors]
        render = partial(
            _render_visit_file, plan, sky, transients, release, visit
        )
        truths = pool.map(render, detectors, paths)
        rows = [row for truth in truths for row in truth]
        ingest_files(
            butler,
            VISIT_IMAGE,
            [
                (
                    path,
                    {
                        "instrument": INSTRUMENT,
                        "visit": visit.visit,
                        "detector": d,
                    },
                )
                for d, path in zip(detectors, paths, strict=True)
            ],
            formatter=VISIT_STORAGE[release][1],
        )
        butler.put(
            _truth_table(rows), TRUTH, instrument=INSTRUMENT, visit=visit.visit
        )
        n_truth += len(rows)
        say(f"  visit {visit.visit} ({visit.band}): {len(rows)} injections")
    return len(plan.visits) * len(detectors), n_truth


def _truth_table(rows: list[tuple[object, ...]]) -> Table:
    """Return the truth rows as a table with units in the column meta."""
    table = Table(rows=rows or None, names=TRUTH_COLUMNS)
    if not rows:
        table = Table(
            names=TRUTH_COLUMNS,
            dtype=("i8", "i8", "i8", "U9", "f8", "f8", "f8", "f8", "f8", "f8"),
        )
    table["ra"].unit = table["dec"].unit = "deg"
    table["flux"].unit = table["template_flux"].unit = "nJy"
    table.meta["description"] = (
        "Injected sources per visit-detector: flux in this visit and in "
        "the template (0 for transients and movers), pixel positions in "
        "the visit image (0-based array coordinates)."
    )
    return table


def _render_patch_file(
    plan: SurveyPlan,
    sky: StaticSky,
    band: str,
    footprints: list[npt.NDArray[np.float64]],
    tract_id: int,
    patch: int,
    path: Path,
) -> bool:
    """Render and write one template patch; say whether it has data."""
    tract = plan.skymap.tract(tract_id)
    exposure = render_template_patch(plan, sky, band, tract, patch, footprints)
    if exposure is None:
        return False
    write_dp1(exposure, path, compress=plan.preset.compress)
    return True


def _candidate_patches(plan: SurveyPlan, band: str) -> list[tuple[int, int]]:
    """Return (tract, patch) pairs that any visit of the band touches."""
    camera = plan.preset.camera
    shape = (camera.height, camera.width)
    found: set[tuple[int, int]] = set()
    for visit in plan.visits_in(band):
        for d in camera.detectors:
            edge = _sampled_edge(visit_wcs(plan, visit, d), shape)
            for tract in plan.skymap:
                for patch in tract.patches_overlapping(edge[:, 0], edge[:, 1]):
                    found.add((tract.tract_id, patch))
    return sorted(found)


def _sampled_edge(wcs: Any, shape: tuple[int, int]) -> npt.NDArray[np.float64]:
    """Return sky points along an array's edge and over its interior."""
    height, width = shape
    xs, ys = np.meshgrid(
        np.linspace(-0.5, width - 0.5, 9), np.linspace(-0.5, height - 0.5, 9)
    )
    ra, dec = wcs.pixel_to_world_values(xs.ravel(), ys.ravel())
    return np.column_stack([ra, dec])


def _write_templates(
    butler: Any,
    pool: Executor,
    plan: SurveyPlan,
    sky: StaticSky,
    staging: Path,
    say: Logger,
) -> int:
    """Render the patches the visits touch and ingest them."""
    written = 0
    for band in plan.preset.bands:
        keys = _candidate_patches(plan, band)
        paths = [staging / f"template_{band}_{t}_{p}.fits" for t, p in keys]
        render = partial(
            _render_patch_file,
            plan,
            sky,
            band,
            template_footprints(plan, band),
        )
        has_data = pool.map(render, *zip(*keys, strict=True), paths)
        written += ingest_files(
            butler,
            TEMPLATE_COADD,
            [
                (
                    path,
                    {
                        "skymap": plan.skymap.name,
                        "tract": t,
                        "patch": p,
                        "band": band,
                    },
                )
                for (t, p), path, ok in zip(keys, paths, has_data, strict=True)
                if ok
            ],
        )
        say(f"  templates ({band}): {written} patches so far")
    return written


def _coverage_by_detector(plan: SurveyPlan) -> dict[str, float]:
    """Return each visit-detector's template coverage, keyed "visit/det".

    Computed from the same footprints that define the templates' NO_DATA,
    on a 256x256 grid of positions: accurate to about half a percent.
    """
    camera = plan.preset.camera
    shape = (camera.height, camera.width)
    coverage: dict[str, float] = {}
    for band in plan.preset.bands:
        footprints = template_footprints(plan, band)
        for visit in plan.visits_in(band):
            for d in camera.detectors:
                fraction = coverage_fraction(
                    visit_wcs(plan, visit, d), shape, footprints
                )
                coverage[f"{visit.visit}/{d}"] = round(fraction, 4)
    return coverage
