"""Run the real API in a background thread, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from workers.api import create_app
from workers.settings import Settings


def free_port() -> int:
    """Return a TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_api(settings: Settings, timeout: float = 60.0) -> Iterator[str]:
    """Serve ``create_app(settings)`` with uvicorn; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            msg = "the API did not start"
            raise RuntimeError(msg)
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def key_with_coverage(
    ci_repo: object, low: float, high: float, detector: int | None = None
) -> tuple[int, int]:
    """Return the first (visit, detector) with coverage in [low, high)."""
    for key, fraction in sorted(ci_repo.coverage.items()):  # type: ignore[attr-defined]
        visit, det = map(int, key.split("/"))
        if low <= fraction < high and detector in (None, det):
            return visit, det
    msg = f"no key with coverage in [{low}, {high})"
    raise LookupError(msg)
