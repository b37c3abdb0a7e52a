"""Long-running commands: the API server and a Dask worker.

``recreate serve`` runs the API (with embedded Redis and LocalCluster
where nothing is configured); ``recreate run`` is the same on the
embedded defaults, after simulating the demo repository if it is
missing, and prints a working curl command; ``recreate worker`` joins a
remote scheduler as a Dask worker that can run recreations.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cache import free_port
from recreate.errors import (
    InvalidRequestError,
    RecreateError,
    ServiceUnavailableError,
)
from workers.settings import Settings

if TYPE_CHECKING:
    from workers.services import Services

# free_port is re-exported: tests and benchmarks pick their ports with it.
__all__ = [
    "check_repository",
    "example_key",
    "free_port",
    "listen_on",
    "run_worker",
    "serve",
    "serve_in_thread",
]

log = logging.getLogger(__name__)


def serve(
    settings: Settings,
    *,
    announce: bool = False,
    sock: socket.socket | None = None,
) -> None:
    """Serve the API until interrupted.

    The port is bound first: a port in use is one line at once, before
    anything starts (and before anything says it serves).

    Parameters
    ----------
    settings
        The configuration (host, port, Redis, scheduler, repository).
    announce
        Print a ready-to-paste curl command once the service is up.
    sock
        A socket already bound to the settings' address (`listen_on`).

    Raises
    ------
    InvalidRequestError
        If the port is in use, or the repository is not there.
    """
    check_repository(settings)
    sock = sock or listen_on(settings.host, settings.port)
    import uvicorn

    from recreate.memory import retain_freed_memory
    from workers.api import create_app

    # The API assembles and sends bodies of ~200 MB; a heap kept between
    # requests spares faulting them in afresh each time.
    retain_freed_memory()
    _configure_logging(settings)
    on_ready = _announcer(settings) if announce else None
    app = create_app(settings, on_ready=on_ready)
    config = uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        # Our handlers log what matters; uvicorn's access log is noise.
        access_log=False,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shut down cleanly, then raised the Ctrl-C again for us.
        pass
    finally:
        sock.close()


def listen_on(host: str, port: int) -> socket.socket:
    """Return a socket bound to ``host:port``, ready for the server.

    Raises
    ------
    InvalidRequestError
        If the address is in use or cannot be bound; the message says
        how to choose another port.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise InvalidRequestError(
            f"cannot listen on {host}: {error.strerror or error}"
        ) from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        why = "in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise InvalidRequestError(
            f"port {port} on {host} is {why}; choose another with --port "
            "(make run PORT=...) or RECREATE_PORT"
        ) from None
    return sock


def check_repository(settings: Settings) -> None:
    """Fail at once, in one line, when a local repository is missing.

    A URI or a label is left to the Butler.

    Raises
    ------
    InvalidRequestError
        If ``butler_repo`` is a local path without a repository.
    """
    repo = settings.butler_repo
    if "://" in repo or "/" not in repo:
        return
    if not (Path(repo) / "butler.yaml").exists():
        raise InvalidRequestError(
            f"no Butler repository at {repo!r}: write one with "
            f"`recreate simulate --repo {repo}`, or set "
            "RECREATE_BUTLER_REPO"
        )


def _configure_logging(settings: Settings) -> None:
    """Log with the request id of each line (``X-Request-Id``)."""
    from workers.middleware import RequestIdFilter

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(request_id)s]: "
        "%(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())


@contextlib.contextmanager
def serve_in_thread(
    settings: Settings,
    *,
    port: int = 0,
    timeout: float = 120.0,
    on_ready: Callable[[Services], None] | None = None,
) -> Iterator[str]:
    """Serve the API from a background thread; yield its base URL.

    For benchmarks, notebooks and tests: the whole service (lifespan
    included) runs in this process, on loopback. ``on_ready`` is called
    with the services once they are up.

    Raises
    ------
    ServiceUnavailableError
        If the API does not start within ``timeout`` seconds.
    """
    import uvicorn

    from workers.api import create_app

    # Bound here and handed over, so no other process can take the port
    # between choosing it and serving on it.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        create_app(settings, on_ready=on_ready),
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            raise ServiceUnavailableError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def _announcer(settings: Settings) -> Callable[[Services], None]:
    """Return a callback printing a curl command for a real key."""
    from workers.auth import Authenticator

    def announce(services: Services) -> None:
        key = example_key(services)
        base = f"http://{_display_host(settings.host)}:{settings.port}"
        auth = Authenticator.from_settings(settings)
        print(f"\nrecreate: {auth.describe()}.", flush=True)
        print("recreate is serving. Try:", flush=True)
        if key is None:
            print(f"  curl {base}/api/v1/health", flush=True)
            return
        visit, detector = key
        print(
            f"  curl -fsS -o diffim.fits -D - "
            f"{base}/api/v1/diffims/{visit}/{detector}\n"
            f"  curl -s {base}/api/v1/health\n"
            f"  open {base}/docs for the API, {base}/metrics for metrics\n",
            flush=True,
        )

    return announce


def _display_host(host: str) -> str:
    """Return a host to put in a URL (0.0.0.0 is not one)."""
    return "localhost" if host in ("0.0.0.0", "::", "") else host  # noqa: S104


def example_key(services: Services) -> tuple[int, int] | None:
    """Return a (visit, detector) whose templates cover it, if any.

    Starts halfway through the keys in data-id order (the first visits of
    a simulated survey are its partly covered edge visits) and returns the
    first with at least one overlapping template patch.
    """
    keys = services.butler.visit_image_keys()
    for visit, detector in keys[len(keys) // 2 :]:
        try:
            found = services.butler.find_inputs(
                visit, detector, services.settings.instrument
            )
        except RecreateError:
            continue
        if len(found.templates) >= 1:
            return visit, detector
    return None


def run_worker(
    scheduler: str,
    *,
    nthreads: int,
    memory_limit: str,
    resources: str | None,
    name: str | None,
    local_directory: str | None,
) -> int:
    """Run a Dask worker (under a nanny) for ``scheduler`` until stopped.

    The worker plugin, with the cache's configuration, arrives from the
    broker through the scheduler; a task that reaches the worker before
    it is retried once the broker has registered the plugin again.
    """
    import dask
    from distributed.cli.dask_worker import main as dask_worker

    from workers.dask_config import worker_dask_config

    args = [
        scheduler,
        "--nthreads",
        str(nthreads),
        "--memory-limit",
        memory_limit,
        "--nworkers",
        "1",
    ]
    if resources:
        args += ["--resources", resources]
    if name:
        args += ["--name", name]
    if local_directory:
        args += ["--local-directory", local_directory]
    # click's main() ends in SystemExit (standalone mode); ours returns.
    dask.config.set(worker_dask_config())
    try:
        dask_worker.main(args=args, prog_name="recreate worker")
    except SystemExit as done:
        return int(done.code or 0)
    raise AssertionError("click's main() returned")  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    serve(Settings())
    sys.exit(0)
