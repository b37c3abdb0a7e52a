"""The embedded redis-servers come back after a kill -9, by themselves."""

from __future__ import annotations

import os
import signal
import time

from cache import RedisServer, ServerSupervisor


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_server_is_restarted_with_its_data(tmp_path):
    restarted: list[str] = []
    with RedisServer(policy="noeviction", data_dir=tmp_path) as server:
        client = server.client()
        client.set("campaign", b"kept")
        # The append-only file is written within a second (everysec).
        client.execute_command("BGREWRITEAOF")
        _wait(
            lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0
        )
        supervisor = ServerSupervisor(
            {"control": server}, interval=0.05, on_restart=restarted.append
        )
        supervisor.start()
        try:
            port, pid = server.port, server.pid
            os.kill(pid, signal.SIGKILL)
            _wait(lambda: server.running and server.pid != pid)
            _wait(lambda: supervisor.status()["control"]["restarts"] == 1)
            assert supervisor.status()["control"]["state"] == "running"
            assert server.port == port
            assert server.client().get("campaign") == b"kept"
            assert restarted == ["control"]
        finally:
            supervisor.stop()


def test_a_server_that_cannot_restart_is_down_and_retried(tmp_path):
    with RedisServer() as server:
        supervisor = ServerSupervisor(
            {"cache": server}, interval=0.05, first_backoff=0.2
        )
        port = server.port
        server.stop()
        # Someone else took the port: the restart fails, and is retried.
        with RedisServer(port=port):
            supervisor.check()
            assert supervisor.status()["cache"] == {
                "state": "down",
                "restarts": 0,
            }
        time.sleep(0.25)
        supervisor.check()
        assert supervisor.status()["cache"] == {
            "state": "running",
            "restarts": 1,
        }
        assert server.running
