"""``recreate run``: the README's main job on embedded defaults."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.service import free_port

pytestmark = pytest.mark.slow


def _redis_servers_under(path: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline", "cwd"]):
        info = process.info
        text = " ".join(info.get("cmdline") or []) + str(info.get("cwd"))
        if "redis-server" in (info.get("name") or "") and str(path) in text:
            found.append(process)
    return found


def test_run_serves_a_working_curl_command_and_cleans_up(ci_repo):
    port = free_port()
    recreate = Path(sys.executable).with_name("recreate")
    env = {
        **os.environ,
        "RECREATE_EMBEDDED_WORKERS_MAX": "1",
        "RECREATE_LOG_LEVEL": "WARNING",
        "RECREATE_REDIS_PASSWORD": PASSWORD,
    }
    for name in (
        "RECREATE_CACHE_REDIS_URL",
        "RECREATE_CONTROL_REDIS_URL",
        "RECREATE_SCHEDULER_ADDRESS",
    ):
        env.pop(name, None)
    process = subprocess.Popen(
        [
            str(recreate),
            "run",
            "--repo",
            str(ci_repo.root),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        # Its own process group: Ctrl-C reaches the group, as in a shell.
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        command = _wait_for_curl(process, lines)
        url = re.search(r"(http://\S+/api/v1/diffims/\S+)", command).group(1)
        first = httpx.get(url, timeout=120)
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "application/fits"
        assert httpx.get(url, timeout=60).headers["x-cache"] == "hit"
        health = httpx.get(f"http://localhost:{port}/api/v1/health").json()
        assert health["status"] == "ok", health
        control_dir = ci_repo.root.parent / "redis-control"
        assert control_dir.is_dir()
        assert len(_redis_servers_under(control_dir)) == 1
        _assert_loopback_and_password(process)
        _assert_a_killed_cache_server_comes_back(process, port, url)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.stdout.close()
            pytest.fail("recreate run did not stop on SIGINT")
    lines.append(rest)
    assert process.returncode == 0, "".join(lines[-30:])
    # Ctrl-C stops everything quietly: no worker dies with a traceback.
    assert "Traceback" not in rest
    assert "KeyboardInterrupt" not in rest
    deadline = time.monotonic() + 10
    while _redis_servers_under(control_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _redis_servers_under(control_dir)


PASSWORD = "embedded-secret-123"  # noqa: S105 - this test's own servers


def _tree(process: subprocess.Popen[str]) -> list[psutil.Process]:
    parent = psutil.Process(process.pid)
    return [parent, *parent.children(recursive=True)]


def _assert_loopback_and_password(process: subprocess.Popen[str]) -> None:
    """Every socket of the service listens on loopback; Redis wants the
    password it was given."""
    import redis

    listening = [
        conn.laddr
        for member in _tree(process)
        for conn in member.net_connections("tcp")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening
    assert all(addr.ip == "127.0.0.1" for addr in listening), listening
    servers = [p for p in _tree(process) if "redis-server" in p.name()]
    assert len(servers) == 2
    for server in servers:
        (port,) = {
            c.laddr.port
            for c in server.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        }
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port).ping()
        assert redis.Redis(port=port, password=PASSWORD).ping()


def _assert_a_killed_cache_server_comes_back(
    process: subprocess.Popen[str], port: int, url: str
) -> None:
    """kill -9 of the blob cache: restarted, the health says so."""
    health_url = f"http://localhost:{port}/api/v1/health"
    servers = [p for p in _tree(process) if "redis-server" in p.name()]
    # The blob cache is the one whose working directory is temporary.
    (cache,) = [s for s in servers if "redis-control" not in s.cwd()]
    cache.kill()
    cache.wait(10)
    deadline = time.monotonic() + 30
    while True:
        health = httpx.get(health_url).json()
        embedded = health["components"]["embedded_redis"]
        if embedded["cache"]["restarts"] == 1:
            break
        assert time.monotonic() < deadline, health
        time.sleep(0.1)
    assert embedded["cache"]["state"] == "running"
    assert health["components"]["cache"] == "ok"
    # The cache came back empty: the product is made again, then a hit.
    assert httpx.get(url, timeout=120).headers["x-cache"] == "miss"
    assert httpx.get(url, timeout=60).headers["x-cache"] == "hit"


def _wait_for_curl(process: subprocess.Popen[str], lines: list[str]) -> str:
    deadline = time.monotonic() + 180
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail("recreate run exited:\n" + "".join(lines[-40:]))
        lines.append(line)
        if "curl -fsS" in line:
            return line
    pytest.fail("no curl command printed:\n" + "".join(lines[-40:]))


def test_worker_processes_start_with_the_allocator_settings(monkeypatch):
    import dask
    from distributed import Client, LocalCluster

    from recreate.memory import ALLOCATOR_ENVIRON
    from workers.dask_config import worker_dask_config

    # A nanny started with Dask's defaults (other tests' clusters) leaves
    # them in this process's environment, which nannies let override
    # their configuration; a service process starts no such nanny.
    for name in ALLOCATOR_ENVIRON:
        monkeypatch.delenv(name, raising=False)
    with (
        dask.config.set(worker_dask_config()),
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        environ = next(iter(client.run(lambda: dict(os.environ)).values()))
        # The statistical profiler is off: a busy task (longer than its
        # one-second cycle) leaves no sample.
        client.submit(_busy, 1.5, pure=False).result()
        sampled = client.run(_profile_samples)
    for name, value in ALLOCATOR_ENVIRON.items():
        assert environ[name] == value
    assert list(sampled.values()) == [0]


def _profile_samples(dask_worker) -> int:
    """Return the samples a worker's profiler took (recent and kept)."""
    kept = sum(profile["count"] for _, profile in dask_worker.profile_history)
    return dask_worker.profile_recent["count"] + kept


def _busy(seconds: float) -> int:
    """Run Python for ``seconds`` (what a profiler would sample)."""
    end = time.perf_counter() + seconds
    turns = 0
    while time.perf_counter() < end:
        turns += 1
    return turns


def test_the_workers_profiler_obeys_dasks_own_switch(monkeypatch):
    from workers.dask_config import WORKER_PROFILER_ENV, worker_dask_config

    monkeypatch.delenv(WORKER_PROFILER_ENV, raising=False)
    assert worker_dask_config()["distributed.worker.profile.enabled"] is False
    monkeypatch.setenv(WORKER_PROFILER_ENV, "True")
    assert "distributed.worker.profile.enabled" not in worker_dask_config()
