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
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.stdout.close()
            pytest.fail("recreate run did not stop on SIGINT")
    process.stdout.close()
    assert process.returncode == 0, "".join(lines[-30:])
    deadline = time.monotonic() + 10
    while _redis_servers_under(control_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _redis_servers_under(control_dir)


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
    from workers.settings import worker_dask_config

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
    for name, value in ALLOCATOR_ENVIRON.items():
        assert environ[name] == value
