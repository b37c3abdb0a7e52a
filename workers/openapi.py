"""The OpenAPI document: every error a route can answer, documented.

Routes describe their own answers; what the app-wide pieces add is
written here once, from what each route uses, so that a new route (an
IVOA endpoint, the viewer's) is documented by adopting them:

* a request body: 413 (`workers.middleware.BodyLimit`), and 400 when
  it cannot be read at all;
* the `workers.auth.identity` dependency: 401 (a bad bearer token);
* a `workers.auth.require_user` dependency: 401 and 403;
* a `workers.limits.rate_limit` dependency: 429 with Retry-After.

Every error response has the one JSON shape, `ErrorModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from workers.auth import USER_DEPENDENCIES, identity
from workers.http_errors import ErrorModel
from workers.limits import LIMIT_DEPENDENCIES

_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorModel"}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}

_DESCRIPTIONS = {
    "400": "The body cannot be read (not UTF-8 JSON).",
    "401": "No user, or a bearer token that is not valid.",
    "403": "The user lacks the scope, or does not own the campaign.",
    "413": "The request body is over the limit; refused unread.",
    "429": "The caller's budget is spent; see Retry-After.",
}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi`` document the app-wide errors of each route."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _add_error_model(schema)
            for route in _api_routes(app):
                _document(schema, route)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_model(schema: dict[str, Any]) -> None:
    """Put `ErrorModel` (and its parts) in the document's schemas."""
    model = ErrorModel.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, part in model.pop("$defs", {}).items():
        schemas.setdefault(name, part)
    schemas.setdefault("ErrorModel", model)


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Yield every API route, those of included routers too.

    FastAPI 0.16x keeps included routers as routes of their own, walked
    by `fastapi.routing.iter_route_contexts`; older ones flatten them.
    """
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = walk(app.routes) if walk is not None else app.routes
    for route in routes:
        if getattr(route, "dependant", None) is not None and getattr(
            route, "methods", None
        ):
            yield route


def _document(schema: dict[str, Any], route: APIRoute) -> None:
    """Add the app-wide errors of one route to its operations."""
    calls = set(_calls(route.dependant))
    statuses: list[str] = []
    if route.body_field is not None:
        statuses += ["400", "413"]
    if identity in calls:
        statuses.append("401")
    if calls & USER_DEPENDENCIES:
        statuses += ["401", "403"]
    if calls & LIMIT_DEPENDENCIES:
        statuses.append("429")
    path = schema["paths"].get(route.path_format, {})
    for method in route.methods or ():
        operation = path.get(method.lower())
        if operation is None:
            continue
        responses = operation.setdefault("responses", {})
        for status in statuses:
            responses.setdefault(status, _error_response(status))


def _error_response(status: str) -> dict[str, Any]:
    """Return the documented response of one app-wide error."""
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
    }
    if status == "429":
        response["headers"] = _RETRY_AFTER
    return response


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Yield every dependency callable of a route, recursively."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)
