"""Find a difference image's inputs through the Butler.

Given a ``(visit, detector)`` key, return the ``visit_image`` dataset and
every ``template_coadd`` patch that overlaps the detector, as Rubin's
GetTemplateTask selects them: the detector's region grown by the warp
border (20 px), tested against the patches' outer regions in the same
band. This works on our simulated repositories and on Rubin's: only the
registry and ``getURI`` are used, never afw's formatters.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    NoOverlapError,
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

#: Instrument names and detector ids read from each open Butler.
_KNOWN_NAMES: weakref.WeakKeyDictionary[
    Any, dict[tuple[str, object], list[Any]]
] = weakref.WeakKeyDictionary()


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
    instrument = _resolve_instrument(butler, instrument)
    visit_record = _visit_record(butler, instrument, visit)
    _check_detector(butler, instrument, detector)
    visit_ref = _visit_image_ref(butler, instrument, visit, detector)
    band = str(visit_ref.dataId["band"])
    region = _detector_region(butler, instrument, visit, detector)
    grown = grow_region(region, TEMPLATE_BORDER_PX * NOMINAL_PIXEL_SCALE)
    template_refs = _overlapping_templates(butler, band, grown)
    if not template_refs:
        raise NoOverlapError(
            f"no template_coadd in band {band!r} overlaps visit {visit} "
            f"detector {detector}"
        )
    return DiffimInputs(
        instrument=instrument,
        visit=visit,
        detector=detector,
        band=band,
        physical_filter=str(visit_record.physical_filter),
        day_obs=int(visit_record.day_obs),
        visit_image=_handle(butler, visit_ref),
        templates=tuple(_handle(butler, ref) for ref in template_refs),
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


def _resolve_instrument(butler: Any, instrument: str | None) -> str:
    """Return the instrument, defaulting to the repository's only one."""
    names = _known(butler, "instrument", None)
    if not names or (instrument is not None and instrument not in names):
        names = _remember(butler, "instrument", None, _instrument_names)
    if instrument is None:
        if len(names) == 1:
            return names[0]
        raise InvalidRequestError(
            f"the repository holds instruments {names}; name one"
        )
    if instrument not in names:
        raise DataNotFoundError(
            f"instrument {instrument!r} is not in the repository "
            f"(instruments: {', '.join(names) or 'none'})"
        )
    return instrument


def _instrument_names(butler: Any, _: object) -> list[Any]:
    """Return the repository's instruments, sorted."""
    return sorted(
        rec.name for rec in butler.registry.queryDimensionRecords("instrument")
    )


def _known(butler: Any, element: str, parent: object) -> list[Any]:
    """Return the names of ``element`` last read from this Butler.

    Instruments and detectors are registered once and never removed, so
    a name seen before needs no query (a stamp's Butler lookup is on
    every first stamp of a detector); a name not seen is looked up
    again (`_remember`), so one registered since is found.
    """
    try:
        return _KNOWN_NAMES.get(butler, {}).get((element, parent), [])
    except TypeError:  # a Butler that takes no weak reference
        return []


def _remember(
    butler: Any,
    element: str,
    parent: object,
    query: Callable[[Any, object], list[Any]],
) -> list[Any]:
    """Query the names of ``element`` and keep them (see `_known`)."""
    names = query(butler, parent)
    # A Butler that takes no weak reference is simply not remembered.
    with contextlib.suppress(TypeError):
        _KNOWN_NAMES.setdefault(butler, {})[(element, parent)] = names
    return names


def _detector_ids(butler: Any, instrument: object) -> list[Any]:
    """Return an instrument's detector ids, sorted."""
    return sorted(
        rec.id
        for rec in butler.registry.queryDimensionRecords(
            "detector", instrument=instrument
        )
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


def _check_detector(butler: Any, instrument: str, detector: int) -> None:
    """Say clearly when a detector number does not exist."""
    ids = _known(butler, "detector", instrument)
    if detector not in ids:
        ids = _remember(butler, "detector", instrument, _detector_ids)
    if detector not in ids:
        span = f"{ids[0]}-{ids[-1]}" if ids else "none"
        raise DataNotFoundError(
            f"detector {detector} of {instrument} does not exist "
            f"(detectors: {span})"
        )


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
    if not records or records[0].region is None:
        raise DataNotFoundError(
            f"visit {visit} detector {detector} has no registered region"
        )
    return records[0].region


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
    region is then tested exactly, as GetTemplateTask tests patch boxes.
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
    overlapping = [
        ref
        for ref in candidates
        if not ref.dataId.records["patch"].region.isDisjointFrom(region)
    ]
    return sorted(
        overlapping,
        key=lambda ref: (
            str(ref.dataId["skymap"]),
            int(ref.dataId["tract"]),
            int(ref.dataId["patch"]),
        ),
    )


def _handle(butler: Any, ref: Any) -> DatasetHandle:
    """Return the provenance handle of a dataset ref."""
    return DatasetHandle(
        dataset_type=ref.datasetType.name,
        dataset_id=str(ref.id),
        run=ref.run,
        data_id={k: ref.dataId[k] for k in ref.dataId.mapping},
        uri=str(butler.getURI(ref)),
        storage_class=ref.datasetType.storageClass_name,
    )
