"""Keep the embedded ``redis-server`` processes alive.

The embedded default (no Redis URL configured) runs its own two
servers; nothing else would restart one that dies (killed, out of
memory). `ServerSupervisor` checks them from a daemon thread and
restarts a dead one on its port, with exponential back-off between
failed attempts, and says what it sees in `status` (the health report
shows it). The control store keeps its append-only file, so its
campaigns and jobs come back with it; the blob cache comes back empty,
and the campaign runner re-queues what went missing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cache.errors import RedisServerError
from cache.server import RedisServer

__all__ = ["ServerSupervisor"]

log = logging.getLogger(__name__)


@dataclass
class _Watched:
    """One supervised server and what happened to it."""

    server: RedisServer
    state: str = "running"
    restarts: int = 0
    backoff: float = 0.0
    next_try: float = 0.0


class ServerSupervisor:
    """Restart dead embedded servers, with back-off.

    Parameters
    ----------
    servers
        The servers by name (``cache``, ``control``).
    interval
        Seconds between checks.
    first_backoff, max_backoff
        Seconds before the second attempt after a failed restart, and
        the most it doubles to.
    on_restart
        Called with a server's name after it was restarted.
    """

    def __init__(
        self,
        servers: Mapping[str, RedisServer],
        *,
        interval: float = 0.5,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self._watched = {name: _Watched(s) for name, s in servers.items()}
        self._interval = interval
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._on_restart = on_restart
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching (a daemon thread)."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name="redis-supervisor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the servers are left as they are)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def status(self) -> dict[str, dict[str, object]]:
        """Return each server's state and how often it was restarted.

        The state is ``running``, ``restarting`` or ``down`` (a restart
        failed; the next try comes after the back-off).
        """
        with self._lock:
            return {
                name: {"state": w.state, "restarts": w.restarts}
                for name, w in self._watched.items()
            }

    def check(self) -> None:
        """Check every server once; restart the dead ones that are due."""
        for name, watched in self._watched.items():
            if watched.server.running:
                continue
            now = time.monotonic()
            if now < watched.next_try:
                continue
            self._restart(name, watched, now)

    def _watch(self) -> None:
        """Check until stopped; never raise (a daemon thread)."""
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception:
                log.exception("redis supervisor check failed")

    def _restart(self, name: str, watched: _Watched, now: float) -> None:
        """Try to restart one server; back off if it fails."""
        with self._lock:
            first = watched.state == "running"
            watched.state = "restarting"
        if first:
            log.warning("embedded redis-server %r died; restarting", name)
        try:
            watched.server.restart()
        except (RedisServerError, OSError) as error:
            with self._lock:
                watched.state = "down"
                watched.backoff = min(
                    self._max_backoff,
                    max(self._first_backoff, 2 * watched.backoff),
                )
                watched.next_try = now + watched.backoff
            log.warning(
                "embedded redis-server %r did not restart (%s); next try "
                "in %.0f s",
                name,
                str(error).splitlines()[0],
                watched.backoff,
            )
            return
        with self._lock:
            watched.state = "running"
            watched.restarts += 1
            watched.backoff = 0.0
            watched.next_try = 0.0
        log.warning("embedded redis-server %r restarted", name)
        if self._on_restart is not None:
            self._on_restart(name)
