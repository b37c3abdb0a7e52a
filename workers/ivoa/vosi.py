"""VOSI: what each IVOA service says of itself (capabilities, availability).

Clients read ``{base}/capabilities`` to find a service's endpoints
(pyvo's SIA2Service does so before its first query) and
``{base}/availability`` to know whether it is up. Each IVOA face of this
service registers both under its own base with `add_vosi_routes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Depends, Request, Response

from workers.limits import rate_limit

if TYPE_CHECKING:
    from workers.services import Services

XML = "text/xml"

_CAPABILITIES_ROOT = (
    "<vosi:capabilities "
    'xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" '
    'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1">'
)


@dataclass(frozen=True)
class Capability:
    """One capability: a standard and where (under the base) it answers.

    ``use`` is VOResource's: ``base`` for parameter-based endpoints
    (SIA's query), ``full`` for complete URLs.
    """

    standard_id: str
    path: str
    use: str = "full"
    version: str | None = None


def capabilities_document(
    base: str, capabilities: Sequence[Capability]
) -> str:
    """Return a VOSI capabilities document for services under ``base``."""
    every = [
        Capability("ivo://ivoa.net/std/VOSI#capabilities", "/capabilities"),
        Capability("ivo://ivoa.net/std/VOSI#availability", "/availability"),
        *capabilities,
    ]
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        _CAPABILITIES_ROOT,
    ]
    for capability in every:
        version = (
            f" version={quoteattr(capability.version)}"
            if capability.version
            else ""
        )
        role = ' role="std"' if capability.version else ""
        url = escape(base + capability.path)
        parts.append(
            f"<capability standardID={quoteattr(capability.standard_id)}>"
            f'<interface xsi:type="vs:ParamHTTP"{role}{version}>'
            f"<accessURL use={quoteattr(capability.use)}>{url}</accessURL>"
            "</interface></capability>"
        )
    parts.append("</vosi:capabilities>")
    return "\n".join(parts) + "\n"


def availability_document(available: bool, note: str) -> str:
    """Return a VOSI availability document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<availability xmlns="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
        f"<available>{'true' if available else 'false'}</available>"
        f"<note>{escape(note)}</note></availability>\n"
    )


def base_url(request: Request, prefix: str = "") -> str:
    """Return the public URL of a path (as the client reached us).

    The one place every IVOA face builds its own URLs (access_url,
    service descriptors, job locations), so a deployment behind a proxy
    changes it once.
    """
    return str(request.base_url).rstrip("/") + prefix


def add_vosi_routes(
    router: APIRouter,
    prefix: str,
    name: str,
    capabilities: Callable[[], Sequence[Capability]],
) -> None:
    """Register ``{prefix}/capabilities`` and ``{prefix}/availability``."""

    async def get_capabilities(request: Request) -> Response:
        document = capabilities_document(
            base_url(request, prefix), capabilities()
        )
        return Response(document, media_type=XML)

    async def get_availability(request: Request) -> Response:
        services: Services = request.app.state.services
        answers = await asyncio.to_thread(services.butler.answers)
        note = (
            f"{name} is accepting queries"
            if answers
            else "the Butler repository does not answer"
        )
        return Response(availability_document(answers, note), media_type=XML)

    router.add_api_route(
        f"{prefix}/capabilities",
        get_capabilities,
        methods=["GET"],
        summary=f"{name}: VOSI capabilities",
        description="The standards this service implements, and where.",
        response_class=Response,
        operation_id=f"{name.lower()}_capabilities",
    )
    router.add_api_route(
        f"{prefix}/availability",
        get_availability,
        methods=["GET"],
        summary=f"{name}: VOSI availability",
        description="Whether the service can answer (its Butler answers).",
        response_class=Response,
        operation_id=f"{name.lower()}_availability",
    )


def add_get_and_post(
    router: APIRouter,
    path: str,
    endpoint: Callable[..., Any],
    *,
    operation: str,
    summary: str,
    description: str,
    responses: Mapping[int | str, dict[str, Any]],
    budget: str,
) -> None:
    """Register a DAL endpoint for GET and POST, as its standard asks.

    Each method is its own operation (``{operation}_get``,
    ``{operation}_post``) and spends one unit of the identity's
    ``budget`` (`workers.limits`).
    """
    for method in ("GET", "POST"):
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            summary=summary,
            description=description,
            response_class=Response,
            responses=dict(responses),
            operation_id=f"{operation}_{method.lower()}",
            dependencies=[Depends(rate_limit(budget))],
        )
