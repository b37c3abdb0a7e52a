"""The service's Butler: one repository, queried by one thread at a time.

Only the API process opens it: the product service resolves a request's
inputs here once, and the task carries them to the worker, which reads
the datasets through their URIs and never asks the Butler again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from recreate.butler import DiffimInputs, find_inputs, open_butler
from recreate.discovery import ImageFootprint, covering, find_footprints
from recreate.selection import Selection
from recreate.selection_query import select_keys
from recreate.template_lookup import TemplateLookup
from recreate.visits import VisitSummary, list_visits, visit_detectors
from workers.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class LockedButler:
    """A Butler whose registry is queried by one thread at a time.

    A Butler with an SQLite registry must not run queries from several
    threads at once; the API runs each request's lookup in a thread.
    """

    butler: Any
    templates: TemplateLookup | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings) -> LockedButler:
        """Open the configured repository read-only.

        The template patches near the sky cells asked about are kept for
        ``recipe_index_ttl_seconds`` (`recreate.template_lookup`), as the
        service's other Butler answers are: a light curve's epochs share
        them.
        """
        lifetime = settings.recipe_index_ttl_seconds
        return cls(
            open_butler(settings.butler_repo, settings.collections()),
            TemplateLookup(lifetime) if lifetime > 0 else None,
        )

    def find_inputs(
        self, visit: int, detector: int, instrument: str | None
    ) -> DiffimInputs:
        """Return a key's inputs (`recreate.butler.find_inputs`)."""
        with self._lock:
            return find_inputs(
                self.butler,
                visit,
                detector,
                instrument=instrument,
                templates=self.templates,
            )

    def select_keys(
        self, selection: Selection, limit: int
    ) -> list[tuple[int, int]]:
        """Return the keys of a selection (`select_keys`, under the lock)."""
        with self._lock:
            return select_keys(self.butler, selection, limit=limit)

    def list_visits(
        self, instrument: str | None, limit: int
    ) -> list[VisitSummary]:
        """Return the newest visits (`recreate.visits.list_visits`)."""
        with self._lock:
            return list_visits(self.butler, instrument=instrument, limit=limit)

    def visit_detectors(
        self, visit: int, instrument: str | None
    ) -> VisitSummary:
        """Return a visit's detectors (`recreate.visits.visit_detectors`)."""
        with self._lock:
            return visit_detectors(self.butler, visit, instrument=instrument)

    def find_footprints(self, **criteria: Any) -> list[ImageFootprint]:
        """Return matching visit-detectors (`find_footprints`, locked)."""
        with self._lock:
            return find_footprints(self.butler, **criteria)

    def covering(
        self, ra: float, dec: float, **criteria: Any
    ) -> list[ImageFootprint]:
        """Return the visit-detectors holding a position (`covering`)."""
        with self._lock:
            return covering(self.butler, ra, dec, **criteria)

    def visit_image_keys(self) -> list[tuple[int, int]]:
        """Return every (visit, detector) with a visit image, sorted."""
        with self._lock:
            refs = self.butler.registry.queryDatasets(
                "visit_image", findFirst=True
            )
            return sorted(
                (int(ref.dataId["visit"]), int(ref.dataId["detector"]))
                for ref in refs
            )

    def answers(self) -> bool:
        """Whether the registry answers a trivial query."""
        with self._lock:
            try:
                list(self.butler.registry.queryDimensionRecords("instrument"))
            except Exception:  # any failure means "down"; logged
                log.exception("Butler health check failed")
                return False
        return True
