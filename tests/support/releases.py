"""A DP2-like copy of the session's ``ci`` repository, built in seconds.

`recreate simulate --release dp2` renders a whole DP2-like repository
(about 40 s for ``ci``); tests need only a few of its visit images. This
copies the ``ci`` repository's registry content (same plan, same
dimensions and regions), rewrites the chosen visit images as
``lsst.images`` VisitImages (storage class ``VisitImage``) and copies
every template patch as it is (``ExposureF``, as in DP2): what
``simulate_repository(..., release="dp2")`` writes, for those visits.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from recreate.io import read_dp1
from recreate.io.lsst_images import write_visit_image
from recreate.simulate.presets import get_preset
from recreate.simulate.registry import (
    FORMATTER,
    LSST_IMAGES_FORMATTER,
    TEMPLATE_COADD,
    VISIT_IMAGE,
    create_butler,
    ingest_files,
    register_dataset_types,
    register_dimensions,
)
from recreate.simulate.survey import plan_survey


def dp2_copy(
    source: Any, root: Path, seed: int, keys: list[tuple[int, int]]
) -> Path:
    """Write a DP2-like copy of a ``ci`` repository with some visits.

    Parameters
    ----------
    source
        An open Butler on the ``ci`` repository.
    root
        The new repository's directory.
    seed
        The seed the ``ci`` repository was simulated with.
    keys
        The (visit, detector) pairs whose visit images to copy.
    """
    plan = plan_survey(get_preset("ci"), seed)
    butler = create_butler(root)
    register_dimensions(butler, plan)
    register_dataset_types(butler, "dp2")
    with tempfile.TemporaryDirectory(dir=root) as staging:
        files = []
        for ref in source.query_datasets(VISIT_IMAGE, explain=False):
            if (ref.dataId["visit"], ref.dataId["detector"]) not in keys:
                continue
            path = Path(staging) / f"{ref.id}.fits"
            write_visit_image(read_dp1(source.getURI(ref).ospath), path)
            files.append((path, _required(ref)))
        ingest_files(butler, VISIT_IMAGE, files, LSST_IMAGES_FORMATTER)
    patches = [
        (Path(source.getURI(ref).ospath), _required(ref))
        for ref in source.query_datasets(TEMPLATE_COADD, explain=False)
    ]
    _ingest_copies(butler, patches)
    return root


def _required(ref: Any) -> dict[str, int | str]:
    """Return a ref's required data ID values."""
    return {k: ref.dataId[k] for k in ref.dataId.dimensions.required}


def _ingest_copies(
    butler: Any, files: list[tuple[Path, dict[str, int | str]]]
) -> None:
    """Ingest template files by copy (the source keeps its own)."""
    from lsst.daf.butler import DatasetRef, FileDataset

    registered = butler.get_dataset_type(TEMPLATE_COADD)
    datasets = [
        FileDataset(
            path=str(path),
            refs=[
                DatasetRef(
                    registered,
                    butler.registry.expandDataId(**data_id),
                    run="sim/run",
                )
            ],
            formatter=FORMATTER,
        )
        for path, data_id in files
    ]
    butler.ingest(*datasets, transfer="copy")
