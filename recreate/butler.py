"""Find a difference image's inputs through the Butler.

Given a ``(visit, detector)`` key, return the ``visit_image`` dataset and
every ``template_coadd`` patch that overlaps the detector, as Rubin's
GetTemplateTask selects them: the detector's region grown by the warp
border (20 px), tested against the patches' outer regions in the same
band. This works on our simulated repositories and on Rubin's: only the
registry and ``getURI`` are used, never afw's formatters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from recreate.butler_names import check_detector, resolve_instrument
from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    NoOverlapError,
)
from recreate.template_lookup import (
    TemplateLookup,
    overlapping_patches,
    sorted_refs,
)

VISIT_IMAGE = "visit_image"
TEMPLATE_COADD = "template_coadd"

#: GetTemplateTask warps onto the detector grown by this many pixels.
TEMPLATE_BORDER_PX = 20
#: Nominal visit pixel scale (arcsec): grows regions, nothing more.
NOMINAL_PIXEL_SCALE = 0.2

#: Largest visit id accepted: DP1 ids are YYYYMMDDnnnnn (13 digits).
MAX_VISIT = 10**15
MAX_DETECTOR = 10**4


@dataclass(frozen=True)
class DatasetHandle:
    """Where one input dataset lives and how to name it in provenance."""

    dataset_type: str
    dataset_id: str
    run: str
    data_id: dict[str, int | str]
    uri: str
    storage_class: str = ""


@dataclass(frozen=True)
class DiffimInputs:
    """Everything needed to recreate one difference image."""

    instrument: str
    visit: int
    detector: int
    band: str
    physical_filter: str
    day_obs: int
    visit_image: DatasetHandle
    templates: tuple[DatasetHandle, ...] = field(default_factory=tuple)

    @property
    def dataset_ids(self) -> tuple[str, ...]:
        """The visit image's id, then the templates' in patch order."""
        return (
            self.visit_image.dataset_id,
            *(t.dataset_id for t in self.templates),
        )


def open_butler(
    repo: str,
    collections: str | list[str] | None = None,
    *,
    writeable: bool = False,
) -> Any:
    """Open a repository (read-only unless asked).

    Parameters
    ----------
    repo
        Repository path or URI (or a label known to the Butler).
    collections
        Collections to search; by default every RUN collection.
    writeable
        Open it for writing (``recreate register``).

    Raises
    ------
    DataNotFoundError
        If there is no repository at ``repo``.
    """
    from lsst.daf.butler import Butler, CollectionType

    try:
        butler = Butler.from_config(repo, writeable=writeable)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        raise DataNotFoundError(
            f"no Butler repository at {repo!r} ({error})"
        ) from None
    if collections is None:
        collections = sorted(
            butler.collections.query(
                "*", collection_types={CollectionType.RUN}
            )
        )
    butler.registry.defaults = butler.registry.defaults.__class__(
        collections=collections
    )
    return butler


def find_inputs(
    butler: Any,
    visit: int,
    detector: int,
    *,
    instrument: str | None = None,
    templates: TemplateLookup | None = None,
) -> DiffimInputs:
    """Return the visit image and overlapping template patches of a key.

    Parameters
    ----------
    butler
        An open Butler (see `open_butler`).
    visit, detector
        The difference image's key.
    instrument
        Instrument name; optional when the repository holds only one.
    templates
        A lookup that keeps the patches near the sky cells it was asked
        about (a service's: the epochs of one position share them); by
        default the registry is asked for each key. The same answer.

    Returns
    -------
    inputs
        The datasets, templates sorted by (tract, patch).

    Raises
    ------
    InvalidRequestError
        If the key is malformed (negative, or absurdly large).
    DataNotFoundError
        If the visit, the detector or the visit image does not exist.
    NoOverlapError
        If no template patch of the visit's band overlaps the detector.
    """
    _check_key(visit, detector)
    instrument = resolve_instrument(butler, instrument)
    # The collections' records and summaries are read once for the
    # lookup's queries, not once per query (kept for this call only: a
    # dataset type new in a collection is seen by the next lookup).
    with butler.registry.caching_context():
        return _find_inputs(butler, instrument, (visit, detector), templates)


def _find_inputs(
    butler: Any,
    instrument: str,
    key: tuple[int, int],
    templates: TemplateLookup | None,
) -> DiffimInputs:
    """Return a valid key's inputs (`find_inputs`)."""
    visit, detector = key
    # One query gives the visit image with its visit's and detector's
    # records (a detector's first stamp pays this lookup); when it finds
    # nothing, the lookup step by step says what is missing.
    visit_ref = _visit_image_with_records(butler, instrument, visit, detector)
    if visit_ref is None:
        visit_record = _visit_record(butler, instrument, visit)
        check_detector(butler, instrument, detector)
        visit_ref = _visit_image_ref(butler, instrument, visit, detector)
        region = _detector_region(butler, instrument, visit, detector)
    else:
        records = visit_ref.dataId.records
        visit_record = records["visit"]
        region = _region_of(records["visit_detector_region"], visit, detector)
    band = str(visit_ref.dataId["band"])
    grown = grow_region(region, TEMPLATE_BORDER_PX * NOMINAL_PIXEL_SCALE)
    if templates is None:
        template_refs = sorted_refs(
            _overlapping_templates(butler, band, grown)
        )
    else:
        template_refs = templates.overlapping(
            butler, band, grown, _overlapping_templates
        )
    if not template_refs:
        raise NoOverlapError(
            f"no template_coadd in band {band!r} overlaps visit {visit} "
            f"detector {detector}"
        )
    visit_image, *patches = _handles(butler, [visit_ref, *template_refs])
    return DiffimInputs(
        instrument=instrument,
        visit=visit,
        detector=detector,
        band=band,
        physical_filter=str(visit_record.physical_filter),
        day_obs=int(visit_record.day_obs),
        visit_image=visit_image,
        templates=tuple(patches),
    )


def _check_key(visit: object, detector: object) -> None:
    """Reject keys that are not plausible integers before any query."""
    for name, value, limit in (
        ("visit", visit, MAX_VISIT),
        ("detector", detector, MAX_DETECTOR),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(
                f"{name} must be an integer, got {value!r}"
            )
        if not 0 <= value < limit:
            raise InvalidRequestError(
                f"{name} {value} is out of range (0 to {limit - 1})"
            )


def _visit_record(butler: Any, instrument: str, visit: int) -> Any:
    """Return a visit's dimension record, or say it does not exist."""
    records = _records(butler, "visit", instrument=instrument, visit=visit)
    if not records:
        raise DataNotFoundError(
            f"visit {visit} of {instrument} is not in the repository"
        )
    return records[0]


def _records(butler: Any, element: str, **data_id: object) -> list[Any]:
    """Return dimension records, empty when a data-id value is unknown."""
    try:
        return list(butler.registry.queryDimensionRecords(element, **data_id))
    except LookupError:
        # The registry rejects unknown values (DataIdValueError) before
        # querying; to the caller that simply means "no such record".
        return []


def _visit_image_ref(
    butler: Any,
    instrument: str,
    visit: int,
    detector: int,
) -> Any:
    """Return the visit_image ref of a key, or say there is none."""
    refs = butler.query_datasets(
        VISIT_IMAGE,
        instrument=instrument,
        visit=visit,
        detector=detector,
        explain=False,
    )
    if not refs:
        raise DataNotFoundError(
            f"there is no visit_image for visit {visit} detector {detector}"
        )
    return refs[0]


def _visit_image_with_records(
    butler: Any,
    instrument: str,
    visit: int,
    detector: int,
) -> Any:
    """Return the visit_image ref with its dimension records, or None.

    None when there is no such dataset, a data-id value is unknown, or
    the visit-detector has no region record.
    """
    try:
        refs = butler.query_datasets(
            VISIT_IMAGE,
            instrument=instrument,
            visit=visit,
            detector=detector,
            with_dimension_records=True,
            explain=False,
        )
    except LookupError:
        return None
    if not refs:
        return None
    try:
        region = refs[0].dataId.records["visit_detector_region"]
    except KeyError:
        return None
    return None if region is None else refs[0]


def _detector_region(
    butler: Any,
    instrument: str,
    visit: int,
    detector: int,
) -> Any:
    """Return the sky region of one visit-detector from the registry."""
    records = _records(
        butler,
        "visit_detector_region",
        instrument=instrument,
        visit=visit,
        detector=detector,
    )
    return _region_of(records[0] if records else None, visit, detector)


def _region_of(record: Any, visit: int, detector: int) -> Any:
    """Return a visit_detector_region record's region, or say it has none."""
    if record is None or record.region is None:
        raise DataNotFoundError(
            f"visit {visit} detector {detector} has no registered region"
        )
    return record.region


def grow_region(region: Any, margin_arcsec: float) -> Any:
    """Return a convex polygon grown outward by about ``margin_arcsec``.

    Each vertex moves away from the centroid by ``margin * sqrt(2)``
    along the sphere, which for a detector's near-rectangular outline
    moves each edge outward by about ``margin``.

    Parameters
    ----------
    region
        An ``lsst.sphgeom.ConvexPolygon``.
    margin_arcsec
        Margin in arcseconds.
    """
    from lsst.sphgeom import ConvexPolygon, UnitVector3d

    vertices = list(region.getVertices())
    cx = sum(v.x() for v in vertices)
    cy = sum(v.y() for v in vertices)
    cz = sum(v.z() for v in vertices)
    norm = math.sqrt(cx * cx + cy * cy + cz * cz)
    centre = (cx / norm, cy / norm, cz / norm)
    step = math.radians(margin_arcsec / 3600.0) * math.sqrt(2.0)
    grown = []
    for v in vertices:
        away = (v.x() - centre[0], v.y() - centre[1], v.z() - centre[2])
        # Remove the radial part so the push is tangent to the sphere.
        dot = away[0] * v.x() + away[1] * v.y() + away[2] * v.z()
        tangent = [
            a - dot * c
            for a, c in zip(away, (v.x(), v.y(), v.z()), strict=True)
        ]
        length = math.sqrt(sum(t * t for t in tangent)) or 1.0
        grown.append(
            UnitVector3d(
                v.x() + step * tangent[0] / length,
                v.y() + step * tangent[1] / length,
                v.z() + step * tangent[2] / length,
            )
        )
    return ConvexPolygon(grown)


def _overlapping_templates(butler: Any, band: str, region: Any) -> list[Any]:
    """Return template_coadd refs of a band whose patches overlap a region.

    The registry's spatial index finds candidates; each patch's own
    region is then tested exactly, as GetTemplateTask tests patch boxes
    (`recreate.template_lookup`). Unsorted.
    """
    with butler.query() as query:
        candidates = list(
            query.datasets(TEMPLATE_COADD, find_first=True)
            .where(
                "band = b AND patch.region OVERLAPS r",
                bind={"b": band, "r": region},
            )
            .with_dimension_records()
        )
    return overlapping_patches(candidates, region)


def _handles(butler: Any, refs: list[Any]) -> list[DatasetHandle]:
    """Return the provenance handles of dataset refs (one URI lookup).

    Raises
    ------
    FileNotFoundError
        If the datastore does not hold one of them.
    RuntimeError
        If one is stored as components, not one file (as ``getURI``).
    """
    uris = butler.get_many_uris(refs)
    handles = []
    for ref in refs:
        found = uris[ref]
        if found.primaryURI is None or found.componentURIs:
            raise RuntimeError(f"dataset {ref} is not stored as one file")
        handles.append(
            DatasetHandle(
                dataset_type=ref.datasetType.name,
                dataset_id=str(ref.id),
                run=ref.run,
                data_id={k: ref.dataId[k] for k in ref.dataId.mapping},
                uri=str(found.primaryURI),
                storage_class=ref.datasetType.storageClass_name,
            )
        )
    return handles
