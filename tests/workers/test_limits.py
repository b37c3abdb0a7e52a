"""Budgets per identity: 429 with Retry-After, counted in Redis."""

from __future__ import annotations

import asyncio
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI

from cache import CacheStores, RedisConfig, RedisServer, ResilientCache
from tests.support.asgi import AppClient
from workers.auth import Authenticator, Identity
from workers.http_errors import RateLimitedError, add_error_handlers
from workers.limits import Quotas, parse_quotas, rate_limit
from workers.settings import DEFAULT_QUOTAS, Settings

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"


def test_the_default_table_has_rubins_budgets():
    budgets = parse_quotas(DEFAULT_QUOTAS)
    assert (budgets["cutout"].count, budgets["cutout"].seconds) == (35, 900)
    assert (budgets["sia"].count, budgets["sia"].seconds) == (70, 900)
    assert {"request", "recompute", "campaign"} <= set(budgets)


@pytest.mark.parametrize("text", ["x", "x=1", "x=a/2", "x=0/5", "x=3/0"])
def test_a_bad_budget_is_named(text):
    with pytest.raises(ValueError, match="quota 'x="):
        parse_quotas(text if "=" in text else text + "=")


def test_off_means_unlimited():
    assert parse_quotas("cutout=off")["cutout"].count is None


def _app(quotas: str) -> FastAPI:
    """A tiny app with a route that opts in with one line."""
    settings = Settings(auth_tokens=f"alice::{ALICE};bob::{BOB}")
    app = FastAPI()
    app.state.auth = Authenticator.from_settings(settings)
    app.state.quotas = Quotas(parse_quotas(quotas))
    add_error_handlers(app)

    @app.get("/cutout", dependencies=[Depends(rate_limit("cutout"))])
    def cutout() -> dict:
        return {}

    @app.get("/free")
    def free(who: Annotated[Identity, Depends(rate_limit("other"))]) -> dict:
        return {"who": who.quota_key}

    return app


def test_a_spent_budget_is_429_with_retry_after_per_identity():
    client = AppClient(_app("cutout=2/60"))
    alice = {"Authorization": f"Bearer {ALICE}"}
    statuses = [client.get("/cutout", headers=alice).status_code for _ in "ab"]
    assert statuses == [200, 200]
    refused = client.get("/cutout", headers=alice)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    (detail,) = refused.json()["detail"]
    assert detail["type"] == "rate_limited"
    assert "cutout" in detail["msg"]
    # Another user, and an anonymous client, have budgets of their own.
    bob = {"Authorization": f"Bearer {BOB}"}
    assert client.get("/cutout", headers=bob).status_code == 200
    assert client.get("/cutout").status_code == 200
    # A budget absent from the table is unlimited.
    assert all(client.get("/free").status_code == 200 for _ in range(5))


def _quota_cache(url: str) -> ResilientCache:
    return ResilientCache(CacheStores.connect(RedisConfig(control_url=url)))


def test_replicas_share_the_budget_through_redis(redis_control_server):
    who = Identity("alice", frozenset(), "127.0.0.1")
    budgets = parse_quotas("cutout=3/60")
    replicas = [Quotas(budgets), Quotas(budgets)]
    cache = _quota_cache(redis_control_server.url)

    async def spend(quotas: Quotas) -> None:
        await quotas.charge(who, "cutout", cache)

    for quotas in (*replicas, replicas[0]):
        asyncio.run(spend(quotas))
    with pytest.raises(RateLimitedError) as caught:
        asyncio.run(spend(replicas[1]))
    assert 1 <= caught.value.retry_after <= 60
    redis_control_server.client().flushall()


def test_with_the_store_down_each_process_counts_alone():
    with RedisServer() as server:
        cache = _quota_cache(server.url)
    # The server is gone: the quota is still enforced, here.
    who = Identity(None, frozenset(), "10.0.0.1")
    quotas = Quotas(parse_quotas("request=1/60"))
    asyncio.run(quotas.charge(who, "request", cache))
    with pytest.raises(RateLimitedError):
        asyncio.run(quotas.charge(who, "request", cache))
