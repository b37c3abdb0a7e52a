"""Who may create, see and cancel campaigns; finished ones expire."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.service import running_api
from tests.workers.conftest import service_settings

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"
CAROL = "carol-token-0123456789"
ROOT = "root-token-0123456789a"
TOKENS = (
    f"alice:write:{ALICE};bob:write:{BOB};carol::{CAROL};"
    f"root:write,admin:{ROOT}"
)
#: Keys the repository does not hold: each fails at once (no recompute).
UNKNOWN = [{"visit": 1, "detector": d} for d in range(3)]


@pytest.fixture(scope="module")
def url(ci_repo, redis_cache_server, redis_control_server, thread_cluster):
    settings = service_settings(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
        auth_tokens=TOKENS,
        campaign_ttl_seconds=1,
        quotas="request=600/900,recompute=35/900,campaign=3/900",
    )
    with running_api(settings) as url:
        yield url


def _as(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _create(url, token, name="c"):
    return httpx.post(
        f"{url}/api/v1/campaigns",
        json={"name": name, "keys": UNKNOWN},
        headers=_as(token),
    )


def _done(url, campaign_id, token):
    deadline = time.monotonic() + 60
    while True:
        campaign = httpx.get(
            f"{url}/api/v1/campaigns/{campaign_id}", headers=_as(token)
        ).json()
        if campaign["state"] in ("done", "cancelled"):
            return campaign
        assert time.monotonic() < deadline, campaign
        time.sleep(0.1)


def test_writing_needs_a_user_with_the_write_scope(url, control_redis):
    anonymous = _create(url, None)
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"][0]["type"] == "unauthorized"
    assert _create(url, CAROL).status_code == 403
    assert _create(url, "not-a-token-at-all-here").status_code == 401
    # Reading products stays open.
    assert httpx.get(f"{url}/api/v1/diffims/1/1").status_code == 404


def test_users_see_and_cancel_their_own_campaigns_only(url, control_redis):
    created = _create(url, ALICE, "alice's")
    assert created.status_code == 201, created.text
    mine = created.json()["id"]
    one = f"{url}/api/v1/campaigns/{mine}"
    assert httpx.get(one, headers=_as(ALICE)).json()["owner"] == "alice"
    assert httpx.get(one).status_code == 401
    assert httpx.get(one, headers=_as(BOB)).status_code == 403
    assert httpx.delete(one, headers=_as(BOB)).status_code == 403
    assert httpx.delete(one, headers=_as(CAROL)).status_code == 403
    listed = httpx.get(f"{url}/api/v1/campaigns", headers=_as(BOB)).json()
    assert listed == []
    everyone = httpx.get(f"{url}/api/v1/campaigns", headers=_as(ROOT))
    assert [c["id"] for c in everyone.json()] == [mine]
    # Its owner, or an admin, may cancel it.
    assert httpx.delete(one, headers=_as(ROOT)).status_code == 200
    assert httpx.delete(one, headers=_as(ALICE)).status_code == 200


def test_a_finished_campaign_expires(url, control_redis):
    created = _create(url, BOB, "short-lived")
    campaign_id = created.json()["id"]
    campaign = _done(url, campaign_id, BOB)
    assert campaign["counts"]["failed"] == len(UNKNOWN)
    assert {f["code"] for f in campaign["failed"]} == {"data_not_found"}
    time.sleep(1.5)
    gone = httpx.get(f"{url}/api/v1/campaigns/{campaign_id}", headers=_as(BOB))
    assert gone.status_code == 404
    listed = httpx.get(f"{url}/api/v1/campaigns", headers=_as(ROOT))
    assert listed.json() == []
    assert not list(control_redis.scan_iter(match="recreate:campaign*"))


def test_creating_campaigns_spends_a_budget(url, control_redis):
    statuses = [_create(url, BOB, f"n{i}").status_code for i in range(4)]
    assert statuses == [201, 201, 201, 429]
    refused = _create(url, BOB)
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["detail"][0]["type"] == "rate_limited"
    # Another user's budget is their own.
    assert _create(url, ALICE).status_code == 201


def test_the_client_sends_its_token(url, control_redis, monkeypatch):
    from recreate.client import Client
    from recreate.errors import InvalidRequestError

    monkeypatch.delenv("RECREATE_TOKEN", raising=False)
    keys = [(1, 0)]
    with Client(url) as anonymous, pytest.raises(InvalidRequestError):
        anonymous.prewarm("x", keys=keys)
    monkeypatch.setenv("RECREATE_TOKEN", ALICE)
    with Client(url) as alice:
        created = alice.prewarm("x", keys=keys)
        assert alice.campaign(created["id"])["owner"] == "alice"
