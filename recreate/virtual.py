"""Virtual ``difference_image`` datasets: Butler entries served on demand.

DP1 served its difference images a third way besides SIA and DataLink:
``butler.get("difference_image", visit=V, detector=D)``. A recreation
service can be reached the same way: register, in a Butler repository,
one ``difference_image`` dataset per recreatable visit-detector whose
datastore location is this service's URL for it (ingested "direct",
without copying: the file is made when it is read). lsst-resources reads
it over HTTP, the formatter parses it, and the Butler user gets a
difference image without knowing it was not stored.

Two flavours, both Rubin's own dataset definitions:

``dp1``
    DP1's: storage class ``ExposureF``, the afw layout; read by afw's
    ``FitsExposureFormatter`` on a Rubin stack (this package's own
    formatter where afw is not installed: then `butler.getURI` and
    ``recreate.io`` read it, since ``ExposureF``'s Python type is afw's).
``dp2``
    DP2's: storage class ``DifferenceImage`` (``lsst.images``), read by
    lsst-images' ``GenericFormatter``, which needs only ``pip``.

Registration checks nothing over HTTP but that the service answers for
the locations (a ``HEAD`` per dataset, up to Butler's limit of 200
checks): it makes no recreation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from recreate.discovery import find_footprints
from recreate.errors import InvalidRequestError

__all__ = ["DATASET_TYPE", "FLAVOURS", "Flavour", "register_virtual_diffims"]

DATASET_TYPE = "difference_image"
DEFAULT_RUN = "recreate/difference_image"
#: DP1's difference_image dimensions (the rest are implied by visit).
DIMENSIONS = ("instrument", "visit", "detector")


@dataclass(frozen=True)
class Flavour:
    """How the datasets of one flavour are defined and served.

    Attributes
    ----------
    storage_class
        The dataset type's storage class.
    formatters
        Formatter classes, the first importable one is recorded.
    service_format
        The service's output format (``recreate.formats``) served at the
        datasets' locations.
    """

    name: str
    storage_class: str
    formatters: tuple[str, ...]
    service_format: str


FLAVOURS = {
    "dp1": Flavour(
        "dp1",
        "ExposureF",
        (
            "lsst.obs.base.formatters.fitsExposure.FitsExposureFormatter",
            "recreate.io.butler_formatter.ExposureFormatter",
        ),
        "dp1",
    ),
    "dp2": Flavour(
        "dp2",
        "DifferenceImage",
        ("lsst.images.formatters.GenericFormatter",),
        "lsst-images",
    ),
}


def location(url: str, flavour: Flavour, visit: int, detector: int) -> str:
    """Return the service URL a virtual dataset's location points at."""
    base = url.rstrip("/")
    return (
        f"{base}/api/butler/{flavour.service_format}/{visit}/{detector}.fits"
    )


def register_virtual_diffims(
    butler: Any,
    url: str,
    *,
    flavour: str = "dp1",
    run: str = DEFAULT_RUN,
    visits: Iterable[int] = (),
    instrument: str | None = None,
) -> int:
    """Register virtual ``difference_image`` datasets served by ``url``.

    Parameters
    ----------
    butler
        A writeable Butler of the repository the service reads (or one
        with the same dimension records).
    url
        The service's base URL (``http://host:port``).
    flavour
        ``dp1`` or ``dp2`` (see the module's docstring).
    run
        The RUN collection to register them in.
    visits
        Only these visits (empty: every visit).
    instrument
        Optional when the repository holds one instrument.

    Returns
    -------
    count
        The number of datasets registered (those already in ``run`` are
        kept, not registered again).

    Raises
    ------
    InvalidRequestError
        If the flavour is unknown, ``url`` is not http(s), no formatter
        of the flavour can be imported, or ``difference_image`` exists
        with another definition.
    """
    from lsst.daf.butler import (
        CollectionType,
        DatasetRef,
        DatasetType,
        FileDataset,
    )

    chosen = _flavour(flavour)
    if not url.startswith(("http://", "https://")):
        raise InvalidRequestError(
            f"the service URL must be http(s), got {url!r}"
        )
    formatter = _formatter(chosen)
    dataset_type = DatasetType(
        DATASET_TYPE,
        DIMENSIONS,
        chosen.storage_class,
        universe=butler.dimensions,
    )
    _register_type(butler, dataset_type)
    butler.registry.registerCollection(run, CollectionType.RUN)
    footprints = find_footprints(
        butler, instrument=instrument, visits=visits, recreatable_only=True
    )
    existing = _registered(butler, run)
    datasets = [
        FileDataset(
            path=location(url, chosen, f.visit, f.detector),
            refs=[
                DatasetRef(
                    dataset_type,
                    butler.registry.expandDataId(
                        instrument=f.instrument,
                        visit=f.visit,
                        detector=f.detector,
                    ),
                    run=run,
                )
            ],
            formatter=formatter,
        )
        for f in footprints
        if (f.visit, f.detector) not in existing
    ]
    if datasets:
        butler.ingest(
            *datasets, transfer="direct", record_validation_info=False
        )
    return len(datasets)


def _flavour(name: str) -> Flavour:
    """Return a flavour by name, or say which there are."""
    try:
        return FLAVOURS[name]
    except KeyError:
        raise InvalidRequestError(
            f"unknown flavour {name!r}; choose one of {', '.join(FLAVOURS)}"
        ) from None


def _formatter(flavour: Flavour) -> str:
    """Return the first formatter of a flavour that can be imported."""
    from lsst.utils import doImportType

    for name in flavour.formatters:
        try:
            doImportType(name)
        except ImportError:
            continue
        return name
    raise InvalidRequestError(
        f"no formatter for the {flavour.name} flavour can be imported "
        f"(tried {', '.join(flavour.formatters)})"
    )


def _register_type(butler: Any, dataset_type: Any) -> None:
    """Register the dataset type, or say how the existing one differs."""
    from lsst.daf.butler.registry import ConflictingDefinitionError

    try:
        butler.registry.registerDatasetType(dataset_type)
    except ConflictingDefinitionError:
        existing = butler.get_dataset_type(DATASET_TYPE)
        raise InvalidRequestError(
            f"{DATASET_TYPE} is already registered as {existing}; this "
            f"flavour needs {dataset_type}"
        ) from None


def _registered(butler: Any, run: str) -> set[tuple[int, int]]:
    """Return the (visit, detector) of datasets already in ``run``."""
    refs = butler.query_datasets(
        DATASET_TYPE, collections=[run], explain=False, limit=None
    )
    return {
        (int(ref.dataId["visit"]), int(ref.dataId["detector"])) for ref in refs
    }
