"""Run the real API in a background thread, on a free loopback port."""

from __future__ import annotations

from workers.serve import free_port
from workers.serve import serve_in_thread as running_api

__all__ = ["free_port", "key_with_coverage", "running_api"]


def key_with_coverage(
    ci_repo: object, low: float, high: float, detector: int | None = None
) -> tuple[int, int]:
    """Return the first (visit, detector) with coverage in [low, high)."""
    coverage = ci_repo.coverage  # type: ignore[attr-defined]
    for key, fraction in sorted(coverage.items()):
        visit, det = map(int, key.split("/"))
        if low <= fraction < high and detector in (None, det):
            return visit, det
    msg = f"no key with coverage in [{low}, {high})"
    raise LookupError(msg)
