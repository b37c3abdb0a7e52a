"""Tests of cache.locks against a real redis-server."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from cache.errors import CacheUnavailableError
from cache.locks import SingleFlight
from cache.server import RedisServer


def test_second_acquire_fails_while_held(control_redis: redis.Redis) -> None:
    flight = SingleFlight(control_redis)
    lock = flight.try_acquire("k")
    assert lock is not None
    assert flight.try_acquire("k") is None
    assert flight.holder("k") == lock.token
    assert flight.try_acquire("other") is not None
    assert lock.release() is True
    assert flight.holder("k") is None
    assert flight.try_acquire("k") is not None


def test_lock_key_and_ttl(control_redis: redis.Redis) -> None:
    flight = SingleFlight(control_redis, prefix="p", ttl_seconds=30)
    lock = flight.try_acquire("k")
    assert lock is not None
    assert 29_000 < control_redis.pttl("p:lock:k") <= 30_000


def test_expiry_lets_another_take_it(control_redis: redis.Redis) -> None:
    flight = SingleFlight(control_redis, ttl_seconds=0.1)
    first = flight.try_acquire("k")
    assert first is not None
    time.sleep(0.2)
    second = flight.try_acquire("k")
    assert second is not None
    assert second.token != first.token


def test_stale_release_keeps_the_new_holder(
    control_redis: redis.Redis,
) -> None:
    flight = SingleFlight(control_redis, ttl_seconds=0.1)
    stale = flight.try_acquire("k")
    assert stale is not None
    time.sleep(0.2)
    fresh = flight.try_acquire("k")
    assert fresh is not None
    assert stale.release() is False
    assert stale.extend() is False
    assert flight.holder("k") == fresh.token
    assert fresh.extend() is True
    assert fresh.release() is True


def test_context_manager_keeps_the_lock_alive(
    control_redis: redis.Redis,
) -> None:
    flight = SingleFlight(control_redis, ttl_seconds=0.3)
    lock = flight.try_acquire("k")
    assert lock is not None
    with lock:
        time.sleep(1.0)
        assert flight.holder("k") == lock.token
        assert flight.try_acquire("k") is None
    assert not lock.lost
    assert flight.holder("k") is None
    assert not any(
        t.name.startswith("lock-keepalive") for t in threading.enumerate()
    )


def test_context_manager_releases_on_error(
    control_redis: redis.Redis,
) -> None:
    flight = SingleFlight(control_redis)
    lock = flight.try_acquire("k")
    assert lock is not None
    with pytest.raises(RuntimeError, match="boom"), lock:
        raise RuntimeError("boom")
    assert flight.holder("k") is None


def test_keep_alive_survives_redis_vanishing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with RedisServer() as server:
        client = server.client()
        try:
            flight = SingleFlight(client, ttl_seconds=0.15)
            lock = flight.try_acquire("k")
            assert lock is not None
            with caplog.at_level(logging.ERROR, logger="cache.locks"), lock:
                server.stop()
                deadline = time.monotonic() + 5
                while not lock.lost and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert lock.lost
            assert "keep-alive failed" in caplog.text
            assert "could not release" in caplog.text
        finally:
            client.close()


def test_wait_released(control_redis: redis.Redis) -> None:
    flight = SingleFlight(control_redis)
    assert flight.wait_released("k", timeout=0.1) is True
    lock = flight.try_acquire("k")
    assert lock is not None
    start = time.monotonic()
    assert flight.wait_released("k", timeout=0.2, poll=0.05) is False
    assert time.monotonic() - start >= 0.2
    timer = threading.Timer(0.1, lock.release)
    timer.start()
    try:
        assert flight.wait_released("k", timeout=5) is True
    finally:
        timer.join()


def test_unreachable_control_redis() -> None:
    server = RedisServer()
    with server:
        client = server.client()
    try:
        flight = SingleFlight(client)
        with pytest.raises(CacheUnavailableError):
            flight.try_acquire("k")
        with pytest.raises(CacheUnavailableError):
            flight.wait_released("k", timeout=1)
    finally:
        client.close()


_HOLDER = """
import sys, time
import redis
from cache.locks import SingleFlight
flight = SingleFlight(redis.Redis(port=int(sys.argv[1])), ttl_seconds=1.0)
with flight.try_acquire("killed") as lock:
    print(lock.token, flush=True)
    time.sleep(600)
"""


def test_a_killed_holders_lease_is_taken_over_within_its_ttl(
    redis_control_server: RedisServer, control_redis: redis.Redis
) -> None:
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(redis_control_server.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        token = holder.stdout.readline().strip()
        flight = SingleFlight(control_redis, ttl_seconds=1.0)
        # A live holder renews its lease: it outlasts several TTLs.
        assert not flight.wait_released("killed", timeout=2.5)
        assert flight.holder("killed") == token
        holder.kill()
        holder.wait()
        started = time.monotonic()
        assert flight.wait_released("killed", timeout=10)
        assert time.monotonic() - started <= 1.5
        assert flight.try_acquire("killed") is not None
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
