"""Preloaded into the embedded cluster's worker processes: Ctrl-C is ours.

A terminal's Ctrl-C reaches every process of its group, the worker
processes of the embedded LocalCluster included, and each would die
with a KeyboardInterrupt traceback. They ignore SIGINT instead; the
service, which handles it, stops them with the rest of the cluster.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:  # noqa: ARG001 - Dask's preload API
    """Ignore SIGINT in this worker process (Dask calls this at start)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
