"""Identities and scopes: the dependencies a route opts in with."""

from __future__ import annotations

import hashlib
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI

from recreate.errors import InvalidRequestError
from tests.support.asgi import AppClient
from workers.auth import (
    ADMIN,
    WRITE,
    Authenticator,
    Identity,
    identity,
    require_user,
)
from workers.http_errors import add_error_handlers
from workers.settings import Settings

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"
ROOT = "root-token-0123456789a"


def _app(settings: Settings) -> FastAPI:
    """A tiny app whose routes opt in the way the service's do."""
    app = FastAPI()
    app.state.auth = Authenticator.from_settings(settings)
    add_error_handlers(app)

    @app.get("/who")
    def who(user: Annotated[Identity, Depends(identity)]) -> dict:
        return {"user": user.user, "scopes": sorted(user.scopes)}

    @app.post("/write")
    def write(
        user: Annotated[Identity, Depends(require_user(WRITE))],
    ) -> dict:
        return {"user": user.user}

    @app.post("/admin")
    def admin(
        user: Annotated[Identity, Depends(require_user(ADMIN))],
    ) -> dict:
        return {"user": user.user}

    return app


def _tokens() -> str:
    root_digest = hashlib.sha256(ROOT.encode()).hexdigest()
    return (
        f"alice:write:{ALICE}\n# a comment\nbob::{BOB};"
        f"root:write,admin:sha256:{root_digest}"
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_loopback_without_tokens_needs_no_ceremony():
    client = AppClient(_app(Settings(host="127.0.0.1")))
    assert client.get("/who").json() == {
        "user": "local",
        "scopes": ["admin", "write"],
    }
    assert client.post("/admin").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])  # noqa: S104
def test_no_auth_is_refused_off_loopback(host):
    with pytest.raises(InvalidRequestError, match="loopback"):
        Authenticator.from_settings(Settings(host=host, auth_mode="none"))


def test_off_loopback_without_tokens_is_read_only():
    auth = Authenticator.from_settings(Settings(host="0.0.0.0"))  # noqa: S104
    assert auth.mode == "token"
    client = AppClient(_app(Settings(host="0.0.0.0")))  # noqa: S104
    assert client.get("/who").json()["user"] is None
    refused = client.post("/write")
    assert refused.status_code == 401
    (detail,) = refused.json()["detail"]
    assert detail["type"] == "unauthorized"


def test_tokens_name_users_and_scopes():
    client = AppClient(_app(Settings(auth_tokens=_tokens())))
    assert client.get("/who", headers=_bearer(ALICE)).json() == {
        "user": "alice",
        "scopes": ["write"],
    }
    assert client.post("/write", headers=_bearer(ALICE)).status_code == 200
    denied = client.post("/write", headers=_bearer(BOB))
    assert denied.status_code == 403
    assert denied.json()["detail"][0]["type"] == "forbidden"
    assert "bob" in denied.json()["detail"][0]["msg"]
    assert client.post("/admin", headers=_bearer(ALICE)).status_code == 403
    # A token given as its SHA-256 works alike.
    assert client.post("/admin", headers=_bearer(ROOT)).status_code == 200


def test_a_wrong_token_is_401_and_no_token_is_anonymous():
    client = AppClient(_app(Settings(auth_tokens=_tokens())))
    wrong = client.get("/who", headers=_bearer(ALICE + "x"))
    assert wrong.status_code == 401
    assert wrong.json()["detail"][0]["type"] == "unauthorized"
    assert ALICE not in wrong.text
    assert client.get("/who").json() == {"user": None, "scopes": []}
    assert client.post("/write").status_code == 401


def test_tokens_come_from_a_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"carol:write:{ALICE}\n")
    client = AppClient(_app(Settings(auth_tokens_file=str(path))))
    assert client.post("/write", headers=_bearer(ALICE)).json() == {
        "user": "carol"
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("alice:write", "expected user:scopes:token"),
        ("alice:write:short", "16 characters"),
        ("alice:write:sha256:abc", "SHA-256"),
    ],
)
def test_bad_token_lines_are_named_without_the_token(line, message):
    with pytest.raises(InvalidRequestError, match=message) as caught:
        Authenticator.from_settings(Settings(auth_tokens=line))
    assert "entry 1" in str(caught.value)
    assert "short" not in str(caught.value)


def test_the_ingress_user_is_trusted_only_in_gafaelfawr_mode():
    headers = {
        "X-Auth-Request-User": "someone",
        "X-Auth-Request-Token-Scopes": "read:image write:recreate",
    }
    ingress = AppClient(_app(Settings(auth_mode="gafaelfawr")))
    assert ingress.get("/who", headers=headers).json() == {
        "user": "someone",
        "scopes": ["write"],
    }
    assert ingress.post("/write", headers=headers).status_code == 200
    assert ingress.post("/admin", headers=headers).status_code == 403
    assert ingress.get("/who").json()["user"] is None
    # Elsewhere the header is just a header.
    tokens = AppClient(_app(Settings(auth_tokens=_tokens())))
    assert tokens.get("/who", headers=headers).json()["user"] is None
    assert tokens.post("/write", headers=headers).status_code == 401
