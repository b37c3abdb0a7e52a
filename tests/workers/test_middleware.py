"""App-wide pieces: request ids, the body limit, errors without internals."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI, Request

from recreate.errors import (
    DataNotFoundError,
    OverloadedError,
    ServiceUnavailableError,
)
from tests.support.asgi import AppClient
from workers.http_errors import add_error_handlers, masked
from workers.middleware import BodyLimit, RequestIds

LIMIT = 1000


def _app(seen: list[int]) -> FastAPI:
    app = FastAPI()
    add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=LIMIT)
    app.add_middleware(RequestIds)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        body = await request.body()
        seen.append(len(body))
        return {"length": len(body)}

    @app.get("/leak")
    async def leak() -> dict:
        raise ServiceUnavailableError(
            "listing campaigns: Redis at redis://10.0.0.7:6379/0 failed"
        )

    @app.get("/missing")
    async def missing() -> dict:
        raise DataNotFoundError(
            "no such FITS file: '/data/repo/sim/run/visit_image/x.fits'"
        )

    @app.get("/busy")
    async def busy() -> dict:
        raise OverloadedError("64 recreations in flight (limit 64)")

    @app.get("/bug")
    async def bug() -> dict:
        raise KeyError("/srv/secret/path")

    return app


@pytest.fixture
def client():
    seen: list[int] = []
    client = AppClient(_app(seen))
    client.seen = seen
    return client


def test_every_answer_has_a_request_id(client):
    first = client.get("/missing")
    second = client.get("/missing")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    given = client.get("/missing", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    odd = client.get("/missing", headers={"X-Request-Id": "a b\x7f"})
    assert odd.headers["x-request-id"] != "a b\x7f"


def test_a_body_over_the_limit_is_413_before_it_is_read(client):
    over = client.post("/echo", content=b"x" * (LIMIT + 1))
    assert over.status_code == 413
    assert over.json()["detail"][0]["type"] == "payload_too_large"
    assert "x-request-id" in over.headers

    chunked = client.post("/echo", chunks=[b"y" * 100] * 20)
    assert chunked.status_code == 413
    assert client.seen == []
    assert client.post("/echo", content=b"z" * LIMIT).json() == {
        "length": LIMIT
    }
    small = client.post("/echo", chunks=[b"a" * 300, b"b" * 300])
    assert small.json() == {"length": 600}


def test_framework_errors_have_the_documented_shape(client):
    for response, status, code in (
        (client.get("/nope"), 404, "not_found"),
        (client.delete("/missing"), 405, "method_not_allowed"),
    ):
        assert response.status_code == status
        (detail,) = response.json()["detail"]
        assert detail["type"] == code
        assert detail["loc"] == ["request"]
    assert "GET" in client.delete("/missing").headers["allow"]


def test_server_errors_keep_their_internals_in_the_log(client, caplog):
    with caplog.at_level(logging.WARNING, logger="workers.http_errors"):
        leak = client.get("/leak")
    assert leak.status_code == 503
    assert leak.headers["retry-after"]
    (detail,) = leak.json()["detail"]
    assert detail["type"] == "service_unavailable"
    assert "10.0.0.7" not in leak.text
    assert "redis" not in leak.text.lower()
    rid = leak.headers["x-request-id"]
    assert any(
        rid in r.getMessage() and "10.0.0.7" in r.getMessage()
        for r in caplog.records
    )
    with caplog.at_level(logging.ERROR):
        bug = client.get("/bug")
    assert bug.status_code == 500
    assert bug.json()["detail"][0]["type"] == "internal_error"
    assert "/srv/secret" not in bug.text
    assert "KeyError" not in bug.text
    assert bug.headers["x-request-id"]


def test_client_errors_name_the_value_but_no_server_path(client):
    missing = client.get("/missing").json()["detail"][0]
    assert missing["type"] == "data_not_found"
    assert "x.fits" not in missing["msg"]
    assert "<path>" in missing["msg"]
    # A 503 whose own message is safe and useful keeps it.
    busy = client.get("/busy").json()["detail"][0]
    assert "limit 64" in busy["msg"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no FITS file: '/a/b/c.fits'", "no FITS file: '<path>'"),
        ("Redis at redis://h:1/0 failed", "Redis at <url> failed"),
        ("visit 12 detector 3 of 4", "visit 12 detector 3 of 4"),
        ("need >= 10%, got 6.1%", "need >= 10%, got 6.1%"),
    ],
)
def test_masked_hides_paths_and_urls_only(text, expected):
    assert masked(text) == expected
