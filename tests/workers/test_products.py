"""The product service: the recipe index, and when a key changes.

Real Redis, a real Butler repository, a real Dask cluster (threads).
"""

from __future__ import annotations

import asyncio
import pickle
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from distributed import Client

from cache import ResultStore
from recreate.butler import find_inputs, open_butler
from recreate.errors import TransientError
from recreate.formats import get_format
from recreate.simulate.registry import ingest_files
from tests.workers.conftest import service_settings
from workers.broker import Broker
from workers.butler import LockedButler
from workers.models import ProductRequest
from workers.product_answers import Served
from workers.services import Services, assemble
from workers.state import RecreateWorkerPlugin

#: The index's lifetime in these tests: longer than re-ingesting a
#: template takes on a loaded 2-core machine (0.4-0.6 s was seen, and
#: 0.5 s made the "still served within the lifetime" check flaky).
INDEX_TTL = 2.0


class CountingButler(LockedButler):
    """The real Butler, counting the lookups made through it."""

    lookups = 0

    def find_inputs(self, visit, detector, instrument):
        self.lookups += 1
        return super().find_inputs(visit, detector, instrument)


def _services(repo, cache_url, control_url, scheduler, **overrides):
    settings = service_settings(
        repo,
        cache_url,
        control_url,
        scheduler,
        recipe_index_ttl_seconds=INDEX_TTL,
        **overrides,
    )
    config = settings.redis_config()

    async def connect():
        return await Client(scheduler, asynchronous=True)

    broker = Broker(connect=connect, plugin=RecreateWorkerPlugin(config))
    butler = CountingButler.open(settings)
    return assemble(settings, butler, config, broker), butler


def _request(key) -> ProductRequest:
    return ProductRequest(key[0], key[1], None, get_format("dp1"))


def _stored_by_hand(services: Services, product_key: str) -> bytes:
    """Put a stand-in product under a key (no recreation needed)."""
    data = f"product {product_key}".encode()
    ResultStore(services.cache.stores.cache_client).put(
        product_key, data, meta={"format": "dp1"}
    )
    return data


async def _body(answer) -> bytes:
    assert isinstance(answer, Served)
    return b"".join([chunk async for chunk in answer.body])


def test_a_hit_on_a_known_request_opens_no_butler(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    cache_redis,
    control_redis,
    full_key,
):
    services, butler = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )

    async def run() -> None:
        spec = await services.products.resolve(_request(full_key))
        assert butler.lookups == 1
        # A task carries its inputs and key, never the cache's settings.
        pickled = pickle.dumps(spec)
        assert redis_cache_server.url.encode() not in pickled
        assert redis_control_server.url.encode() not in pickled
        data = _stored_by_hand(services, spec.product_key)
        for _ in range(3):
            answer = await services.products.get(_request(full_key))
            assert answer.cache_state == "hit"
            assert await _body(answer) == data
        # The first hit remembered the key: the next two asked no Butler.
        assert butler.lookups == 2
        await services.close()

    asyncio.run(run())


def test_a_new_code_version_is_a_new_key_at_once(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    cache_redis,
    control_redis,
    full_key,
):
    services, butler = _services(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )
    newer = replace(services.products, code_version="99.0.0")

    async def run() -> None:
        old = await services.products.resolve(_request(full_key))
        _stored_by_hand(services, old.product_key)
        assert (await services.products.get(_request(full_key))).cache_state
        assert (await services.products.get(_request(full_key))).cache_state
        assert butler.lookups == 2
        # The index entry of the old version is not the new one's: the
        # Butler is asked, and the key is new. (A worker of the old
        # version refuses to make a product keyed for another.)
        with pytest.raises(TransientError, match=r"99\.0\.0"):
            await newer.get(_request(full_key))
        assert butler.lookups == 3
        new = await newer.resolve(_request(full_key))
        assert new.product_key != old.product_key
        await services.close()

    asyncio.run(run())


@pytest.fixture
def repo_copy(ci_repo, tmp_path) -> Path:
    """A copy of the ci repository that a test may change."""
    root = tmp_path / "repo"
    shutil.copytree(ci_repo.root, root)
    return root


def _replace_a_template(repo: Path, key: tuple[int, int]) -> None:
    """Ingest one of a key's template patches again: a new dataset id."""
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(repo), writeable=True, run="sim/run")
    template = find_inputs(open_butler(str(repo)), *key).templates[0]
    ref = butler.get_dataset(template.dataset_id)
    again = repo.parent / "again.fits"
    shutil.copy(butler.getURI(ref).ospath, again)
    butler.pruneDatasets([ref], disassociate=True, unstore=True, purge=True)
    data_id = {name: ref.dataId[name] for name in ref.dataId.required}
    ingest_files(butler, "template_coadd", [(again, data_id)])


def test_a_new_template_is_a_new_key_once_the_index_entry_expires(
    repo_copy,
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    cache_redis,
    control_redis,
    full_key,
):
    services, butler = _services(
        SimpleNamespace(root=repo_copy),
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )

    async def run() -> None:
        old = await services.products.resolve(_request(full_key))
        stale = _stored_by_hand(services, old.product_key)
        # Served once: the index now knows the request's key.
        assert await _body(await services.products.get(_request(full_key)))
        _replace_a_template(repo_copy, full_key)
        # (The replacement may outlast the index's lifetime on a busy
        # machine: the entry is written again, as a request just before
        # the replacement would have.)
        services.cache.remember_product(
            services.products._request_key(_request(full_key)),
            old.product_key,
        )
        # Within the index's lifetime the old product is still served:
        # the staleness the TTL bounds (documented in workers.products).
        answer = await services.products.get(_request(full_key))
        assert await _body(answer) == stale
        await asyncio.sleep(INDEX_TTL + 0.1)
        lookups = butler.lookups
        answer = await services.products.get(_request(full_key))
        assert butler.lookups == lookups + 1
        assert answer.cache_state == "miss"
        fresh = await _body(answer)
        assert fresh != stale
        assert fresh.startswith(b"SIMPLE")
        new = answer.info.meta["recipe_hash"]
        assert new != old.recipe_hash
        await services.close()

    asyncio.run(run())
