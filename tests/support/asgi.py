"""Call an ASGI app in this process, synchronously (small test apps).

Starlette's TestClient is deprecated with httpx; this is httpx's own
ASGI transport, one event loop per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx


class AppClient:
    """Send requests to an ASGI app; errors come back as responses."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(
        self,
        method: str,
        url: str,
        *,
        chunks: Sequence[bytes] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; ``chunks`` sends a chunked body."""

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(
                app=self.app, raise_app_exceptions=False
            )
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test"
            ) as client:
                if chunks is not None:
                    kwargs["content"] = _stream(chunks)
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET ``url``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST to ``url``."""
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        """DELETE ``url``."""
        return self.request("DELETE", url, **kwargs)


async def _stream(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
