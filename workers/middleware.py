"""App-wide ASGI middleware: request ids and the request-body limit.

Both are plain ASGI middleware (a streamed response passes through
untouched) and apply to every route, so a new route gets them without a
line of its own.

`RequestIds`
    Gives every request an id: the client's ``X-Request-Id`` when it is
    a short token, a new one otherwise. It is sent back in the same
    header, kept in a context variable for the log (`RequestIdFilter`)
    and for error bodies, so a user's report finds its log lines.
`BodyLimit`
    Refuses a body over ``max_bytes`` with 413 before the app reads a
    byte of it: at once when Content-Length says so, and for a chunked
    body as soon as the bytes received pass the limit. Nothing over the
    limit is ever parsed (a 25 MB JSON body used to hold the event loop
    for seconds).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The header carrying the request id, both ways.
REQUEST_ID_HEADER = "X-Request-Id"
#: A client's own id is kept only if it looks like one.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="-"
)


def request_id() -> str:
    """Return the id of the request being handled (``-`` outside one)."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Put the request id on every log record (``%(request_id)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the attribute; keep the record."""
        record.request_id = request_id()
        return True


def _header(scope: Scope, name: bytes) -> bytes | None:
    """Return a request header's value (the first), or None."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


class RequestIds:
    """ASGI middleware giving each request an id (see module docs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Name the request, pass it on, and send the id back."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = (_header(scope, b"x-request-id") or b"").decode("latin-1")
        rid = given if _CLIENT_ID.fullmatch(given) else secrets.token_hex(8)
        # Each request runs in its own task (its own context): no reset.
        _request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        raw = (REQUEST_ID_HEADER.lower().encode(), rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (key, value)
                    for key, value in message.get("headers", [])
                    if key.lower() != raw[0]
                ]
                message["headers"] = [*headers, raw]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` (413).

    Parameters
    ----------
    app
        The app to protect.
    max_bytes
        The largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Refuse, buffer (chunked, under the limit) or pass the body on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        if _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)
            return
        body = await self._read_chunked(receive)
        if body is None:
            await self._refuse(send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_chunked(self, receive: Receive) -> bytes | None:
        """Read a chunked body; None as soon as it passes the limit."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left: the app will see it leave too.
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)

    async def _refuse(self, send: Send) -> None:
        """Send the 413 in the API's error shape."""
        body = json.dumps(
            {
                "detail": [
                    {
                        "loc": ["body"],
                        "msg": "request body over the limit of "
                        f"{self.max_bytes} bytes",
                        "type": "payload_too_large",
                    }
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive callable handing the app a buffered body first.

    Later calls go to the server's own ``receive``: a streamed response
    listens on it for the client leaving.
    """
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
