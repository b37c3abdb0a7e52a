"""Full products and their stored solutions, made once per session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from recreate.butler import find_inputs, open_butler
from recreate.recreation import recreate_from_inputs
from recreate.solution import solution_bytes, solution_from_bytes
from tests.conftest import CI_SEED
from tests.support.releases import dp2_copy
from tests.support.service import key_with_coverage

if TYPE_CHECKING:
    from recreate.butler import DiffimInputs
    from recreate.exposure import Exposure
    from recreate.pipeline.template import WarpedTemplate
    from recreate.solution import Solution


@dataclass(frozen=True, eq=False)
class Product:
    """A full product, the inputs it came from and its stored solution.

    ``template`` is the recreation's warped template (the whole grid).
    """

    found: DiffimInputs
    full: Exposure
    solution: Solution
    data: bytes
    template: WarpedTemplate | None = None


def _product(repo: object, key: tuple[int, int], recipe: str) -> Product:
    found = find_inputs(open_butler(str(repo)), *key)
    result = recreate_from_inputs(found, recipe=recipe)
    assert result.solution is not None
    data = solution_bytes(result.solution)
    return Product(
        found,
        result.exposure,
        solution_from_bytes(data),
        data,
        result.template,
    )


@pytest.fixture(scope="session")
def full_key(ci_repo):
    """A detector the template covers wholly, with saturated stars."""
    return key_with_coverage(ci_repo, 1.0, 2.0, detector=3)


@pytest.fixture(scope="session")
def edge_key(ci_repo):
    """A detector the template covers in part: NO_DATA inside it."""
    return key_with_coverage(ci_repo, 0.3, 0.8)


@pytest.fixture(scope="session")
def dp2_release(ci_repo, edge_key, tmp_path_factory):
    """A DP2-like repository (lsst.images visit images) of the edge key."""
    root = tmp_path_factory.mktemp("solution-dp2") / "repo"
    source = open_butler(str(ci_repo.root))
    return dp2_copy(source, root, CI_SEED, [edge_key])


@pytest.fixture(scope="session")
def products(ci_repo, full_key, edge_key, dp2_release):
    """Each case: recipe and repository, key; its product and solution."""
    return {
        "dp1-full": _product(ci_repo.root, full_key, "dp1"),
        "dp1-edge": _product(ci_repo.root, edge_key, "dp1"),
        "dp2-full": _product(ci_repo.root, full_key, "dp2"),
        "dp2-release-edge": _product(dp2_release, edge_key, "dp2"),
    }
