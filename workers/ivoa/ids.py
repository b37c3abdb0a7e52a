"""IVOA identifiers of difference images, and the requests they name.

A recreatable difference image is named by its repository's data ID::

    ivo://<authority>/<label>?visit=V&detector=D[&instrument=I]

(authority and label are settings). Rubin names stored datasets by
their Butler UUIDs; a recreated image has none, so its data ID is its
name, as Rubin's cutout design (DMTN-208) plans for unstored products.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from recreate.butler import MAX_DETECTOR, MAX_VISIT
from recreate.formats import get_format
from workers.ivoa.params import NotFoundFaultError, Params, UsageError, integer
from workers.models import ProductRequest
from workers.settings import Settings


@dataclass(frozen=True)
class ImageId:
    """The data ID an identifier names."""

    visit: int
    detector: int
    instrument: str | None = None

    def request(self, format_name: str = "dp1") -> ProductRequest:
        """Return the product request of this image."""
        return ProductRequest(
            visit=self.visit,
            detector=self.detector,
            instrument=self.instrument,
            output_format=get_format(format_name),
        )


def format_id(
    settings: Settings,
    visit: int,
    detector: int,
    instrument: str | None = None,
) -> str:
    """Return the identifier of a difference image.

    The instrument is named only when given (a repository of one
    instrument, or the service's default, needs none).
    """
    query: dict[str, str | int] = {"visit": visit, "detector": detector}
    if instrument:
        query["instrument"] = instrument
    return (
        f"ivo://{settings.ivoa_authority}/{settings.repository_label()}"
        f"?{urlencode(query)}"
    )


def parse_id(settings: Settings, raw: str) -> ImageId:
    """Return the data ID an identifier names.

    Raises
    ------
    UsageError
        If it is not an identifier of this form.
    NotFoundFaultError
        If it names another authority or repository.
    """
    parts = urlsplit(raw.strip())
    if parts.scheme != "ivo" or not parts.netloc or parts.fragment:
        raise UsageError(
            f"ID {raw!r} is not of the form ivo://{settings.ivoa_authority}/"
            f"{settings.repository_label()}?visit=V&detector=D"
        )
    expected = (settings.ivoa_authority, settings.repository_label())
    if (parts.netloc, parts.path.strip("/")) != expected:
        raise NotFoundFaultError(
            f"ID {raw!r} names no repository of this service (it serves "
            f"ivo://{expected[0]}/{expected[1]})"
        )
    fields = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(fields) - {"visit", "detector", "instrument"}
    if unknown or not {"visit", "detector"} <= set(fields):
        raise UsageError(
            f"ID {raw!r} must name visit and detector (and optionally "
            "instrument), nothing else"
        )
    return ImageId(
        visit=_bounded("visit", fields["visit"], MAX_VISIT),
        detector=_bounded("detector", fields["detector"], MAX_DETECTOR),
        instrument=fields.get("instrument") or None,
    )


def _bounded(name: str, text: str, limit: int) -> int:
    """Return an id in [0, limit), or a UsageError naming it."""
    value = integer(name, text)
    if value >= limit:
        raise UsageError(f"{name} {value} is out of range (0 to {limit - 1})")
    return value


def ids_of(settings: Settings, params: Params) -> list[str]:
    """Return the identifiers a request names: ``ID``, or VISIT/DETECTOR.

    ``VISIT`` and ``DETECTOR`` (repeated in pairs) name data IDs directly
    and become identifiers here; they may be given beside ``ID``.

    Raises
    ------
    UsageError
        If VISIT and DETECTOR are not given in pairs, or nothing is named.
    """
    ids = list(params.get("ID", []))
    visits, detectors = params.get("VISIT", []), params.get("DETECTOR", [])
    if len(visits) != len(detectors):
        raise UsageError(
            f"VISIT and DETECTOR go in pairs; got {len(visits)} VISIT and "
            f"{len(detectors)} DETECTOR"
        )
    instrument = next(iter(params.get("INSTRUMENT", [])), None)
    for visit, detector in zip(visits, detectors, strict=True):
        ids.append(
            format_id(
                settings,
                _bounded("VISIT", visit, MAX_VISIT),
                _bounded("DETECTOR", detector, MAX_DETECTOR),
                instrument,
            )
        )
    if not ids:
        raise UsageError("give ID (or VISIT and DETECTOR)")
    return ids


def quoted(identifier: str) -> str:
    """Return an identifier quoted for a URL's query."""
    return quote(identifier, safe="")
