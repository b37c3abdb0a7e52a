"""Session fixtures: one simulated ``ci`` repository shared by tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.redis import (  # noqa: F401 - fixtures for every test
    cache_redis,
    control_redis,
    redis_cache_server,
    redis_control_server,
)

if TYPE_CHECKING:
    from recreate.simulate.repository import SimulationResult

CI_SEED = 7


@pytest.fixture(scope="session")
def ci_repo(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    """Return a simulated ``ci`` repository, built once per session."""
    from recreate.simulate.repository import simulate_repository

    root = tmp_path_factory.mktemp("ci-repo") / "repo"
    return simulate_repository(root, "ci", CI_SEED, jobs=2)


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Return ../shared/realdata, or skip when it is absent."""
    path = Path(__file__).resolve().parents[2] / "shared" / "realdata"
    if not path.is_dir():
        pytest.skip("../shared/realdata is not present")
    return path
