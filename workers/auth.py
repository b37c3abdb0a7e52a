"""Who is asking: identities, scopes, and the dependencies routes use.

Three ways to know a user (``RECREATE_AUTH_MODE``):

``none``
    Everyone is the user ``local``, with every scope. Allowed only when
    the API binds a loopback address: ``make run`` needs no ceremony.
``token``
    ``Authorization: Bearer <token>`` names the user, from a table of
    tokens (``RECREATE_AUTH_TOKENS`` or the file ``RECREATE_AUTH_TOKENS_
    FILE``, a mounted Secret): lines of ``user:scopes:token``, scopes
    comma-separated, the token in clear or as ``sha256:<hex>``. Tokens
    are compared by their SHA-256, in constant time, against every
    entry. No token: an anonymous reader. A token that matches none:
    401.
``gafaelfawr``
    Behind Rubin's ingress (Gafaelfawr), which authenticates every
    request and passes the user in ``X-Auth-Request-User`` and the
    token's scopes in ``X-Auth-Request-Token-Scopes``. Trusted only in
    this mode: the service must then be reachable through the ingress
    alone (the chart's NetworkPolicy).

``auto`` (the default) is ``token`` when tokens are configured, else
``none`` on loopback, else ``token`` with no tokens (read-only).

Scopes: ``write`` creates campaigns, ``admin`` cancels anyone's.
Anonymous users may read (products, jobs); their quotas are counted by
client address.

A route opts in with one parameter (see ``docs/routes.md``)::

    user: Annotated[Identity, Depends(require_user(WRITE))]
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recreate.errors import InvalidRequestError
from workers.http_errors import ForbiddenError, UnauthorizedError
from workers.settings import Settings

log = logging.getLogger(__name__)

#: Scope allowing the creation of campaigns.
WRITE = "write"
#: Scope allowing the cancellation of anyone's campaign.
ADMIN = "admin"
#: The user of ``none`` mode.
LOCAL_USER = "local"
#: Shortest token accepted in clear (a guessable one is no token).
MIN_TOKEN_LENGTH = 16

#: Every dependency `require_user` made (the OpenAPI document lists 403
#: under the routes that use one).
USER_DEPENDENCIES: set[Callable[..., Identity]] = set()

_BEARER = HTTPBearer(
    auto_error=False,
    description="A token from the service's token table (token mode).",
)


@dataclass(frozen=True)
class Identity:
    """Who sent a request.

    Attributes
    ----------
    user
        The user name; None for an anonymous reader.
    scopes
        What the user may do (`WRITE`, `ADMIN`).
    client
        The client's address (anonymous quotas are counted by it).
    """

    user: str | None
    scopes: frozenset[str]
    client: str

    @property
    def quota_key(self) -> str:
        """Who a quota is counted for: the user, else the address."""
        return f"user:{self.user}" if self.user else f"addr:{self.client}"

    def may(self, scope: str) -> bool:
        """Whether the identity holds ``scope``."""
        return scope in self.scopes


@dataclass(frozen=True)
class _Token:
    """One entry of the token table: a user, scopes, a token's digest."""

    user: str
    scopes: frozenset[str]
    digest: bytes


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Authenticator:
    """Tell the identity of each request, as the settings say.

    Build it with `from_settings`; `identify` is called once per request
    by the `identity` dependency.
    """

    mode: str
    tokens: tuple[_Token, ...] = ()
    write_scope: str = "write:recreate"
    admin_scope: str = "admin:recreate"

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """Return the authenticator the settings describe.

        Raises
        ------
        InvalidRequestError
            If ``none`` is asked for on a non-loopback address, or a
            token entry is malformed (the message names the line).
        """
        tokens = _read_tokens(settings)
        mode = settings.auth_mode
        if mode == "auto":
            loopback = is_loopback(settings.host)
            mode = "none" if loopback and not tokens else "token"
        if mode == "none" and not is_loopback(settings.host):
            raise InvalidRequestError(
                f"auth mode 'none' lets anyone write; it is allowed only "
                f"on a loopback address, not {settings.host!r}: set "
                "RECREATE_AUTH_MODE=token with RECREATE_AUTH_TOKENS_FILE, "
                "or gafaelfawr behind Rubin's ingress"
            )
        if mode == "token" and not tokens:
            log.warning("token auth with no tokens: the service is read-only")
        return cls(
            mode, tokens, settings.auth_write_scope, settings.auth_admin_scope
        )

    def describe(self) -> str:
        """Say in one sentence how requests are authenticated."""
        if self.mode == "none":
            return (
                "auth is off (loopback only: everyone is 'local'); to turn "
                "it on, set RECREATE_AUTH_TOKENS_FILE to a file of "
                "user:scopes:token lines"
            )
        if self.mode == "token":
            return f"bearer tokens ({len(self.tokens)} in the table)"
        return "the user in X-Auth-Request-User (Rubin's ingress)"

    def identify(self, request: Request, bearer: str | None) -> Identity:
        """Return the identity of a request.

        Raises
        ------
        UnauthorizedError
            A bearer token that is in no entry of the table (token
            mode), or a user header that is not a user name.
        """
        client = request.client.host if request.client else "unknown"
        if self.mode == "none":
            return Identity(LOCAL_USER, frozenset({WRITE, ADMIN}), client)
        if self.mode == "gafaelfawr":
            return self._from_ingress(request, client)
        if bearer is None:
            return Identity(None, frozenset(), client)
        entry = self._match(bearer)
        if entry is None:
            raise UnauthorizedError("the bearer token is not valid")
        return Identity(entry.user, entry.scopes, client)

    def _match(self, token: str) -> _Token | None:
        """Return the entry of a token, comparing every digest alike."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for entry in self.tokens:
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        return found

    def _from_ingress(self, request: Request, client: str) -> Identity:
        """Return the identity Gafaelfawr put in the request's headers."""
        user = request.headers.get("x-auth-request-user")
        if user is None:
            return Identity(None, frozenset(), client)
        if not user or not user.isprintable() or len(user) > 256:
            raise UnauthorizedError("X-Auth-Request-User is not a user name")
        granted = set(
            request.headers.get("x-auth-request-token-scopes", "").split()
        )
        scopes = {WRITE} if self.write_scope in granted else set()
        if self.admin_scope in granted:
            scopes |= {WRITE, ADMIN}
        return Identity(user, frozenset(scopes), client)


def _read_tokens(settings: Settings) -> tuple[_Token, ...]:
    """Return the token table from the setting and the file."""
    lines: list[tuple[str, str]] = []
    if settings.auth_tokens is not None:
        text = settings.auth_tokens.get_secret_value().replace(";", "\n")
        lines += [("RECREATE_AUTH_TOKENS", line) for line in text.splitlines()]
    if settings.auth_tokens_file:
        path = Path(settings.auth_tokens_file)
        try:
            text = path.read_text()
        except OSError as error:
            raise InvalidRequestError(
                f"cannot read RECREATE_AUTH_TOKENS_FILE: {error.strerror}"
            ) from None
        lines += [(path.name, line) for line in text.splitlines()]
    return _parse_tokens(lines)


def _parse_tokens(lines: Sequence[tuple[str, str]]) -> tuple[_Token, ...]:
    """Parse ``user:scopes:token`` lines (blank and ``#`` lines skipped).

    The message of a bad line names its source and number, never the
    token.
    """
    entries = []
    for number, (source, line) in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise InvalidRequestError(
                f"{source} entry {number}: expected user:scopes:token"
            )
        user, scopes, token = parts
        entries.append(
            _Token(
                user,
                frozenset(s for s in scopes.split(",") if s),
                _digest(token, f"{source} entry {number} ({user})"),
            )
        )
    return tuple(entries)


def _digest(token: str, where: str) -> bytes:
    """Return a token's SHA-256 (given as ``sha256:<hex>`` or in clear)."""
    if token.startswith("sha256:"):
        try:
            digest = bytes.fromhex(token.removeprefix("sha256:"))
        except ValueError:
            digest = b""
        if len(digest) != hashlib.sha256().digest_size:
            raise InvalidRequestError(f"{where}: not a SHA-256 hex digest")
        return digest
    if len(token) < MIN_TOKEN_LENGTH:
        raise InvalidRequestError(
            f"{where}: a token needs {MIN_TOKEN_LENGTH} characters or more"
        )
    return hashlib.sha256(token.encode()).digest()


def identity(
    request: Request,
    bearer: Annotated[
        HTTPAuthorizationCredentials | None, Security(_BEARER)
    ] = None,
) -> Identity:
    """Return who sent the request (an anonymous reader if nobody).

    A FastAPI dependency; ``request.state.identity`` keeps it for the
    rest of the request.
    """
    found: Identity | None = getattr(request.state, "identity", None)
    if found is None:
        auth: Authenticator = request.app.state.auth
        found = auth.identify(request, bearer.credentials if bearer else None)
        request.state.identity = found
    return found


def require_user(scope: str | None = None) -> Callable[..., Identity]:
    """Return a dependency demanding a user (and ``scope``, if given).

    Raises (from the dependency)
    ----------------------------
    UnauthorizedError
        An anonymous request: 401.
    ForbiddenError
        A user without ``scope``: 403.
    """

    def required(
        who: Annotated[Identity, Depends(identity)],
    ) -> Identity:
        if who.user is None:
            raise UnauthorizedError(
                "this needs a user: send Authorization: Bearer <token>"
            )
        if scope is not None and not who.may(scope):
            raise ForbiddenError(
                f"user {who.user!r} lacks the {scope!r} scope"
            )
        return who

    USER_DEPENDENCIES.add(required)
    return required
