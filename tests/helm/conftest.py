"""Renderings of the chart shared by the tests (each made once)."""

from __future__ import annotations

import pytest

from tests.helm.rendering import (
    REQUIRED,
    Manifests,
    merge,
    production_values,
    render,
)

#: Every optional resource on, and secrets made by the chart.
EVERYTHING = merge(
    REQUIRED,
    {
        "autoscaling": {"enabled": True},
        "ingress": {"enabled": True, "host": "data.example.org"},
        "serviceMonitor": {"enabled": True},
        "redis": {"password": "not-a-real-password"},
        "solutionStore": {"persistence": {"enabled": True}},
        "auth": {"tokens": "alice:write:sha256:" + "0" * 64 + "\n"},
        "butler": {
            "env": {"S3_ENDPOINT_URL": "https://s3.example.org"},
            "secretEnv": {"AWS_ACCESS_KEY_ID": "id"},
            "secretFiles": {"db-auth.yaml": "- url: postgresql://db/\n"},
        },
    },
)

#: Value sets rendered, linted and validated: defaults (plus the one
#: required value), the production-like example, and everything on.
VALUE_SETS = {
    "defaults": REQUIRED,
    "production": production_values(),
    "everything": EVERYTHING,
}


@pytest.fixture(scope="session")
def default_manifests() -> Manifests:
    return render(VALUE_SETS["defaults"])


@pytest.fixture(scope="session")
def production_manifests() -> Manifests:
    return render(VALUE_SETS["production"])


@pytest.fixture(scope="session")
def everything_manifests() -> Manifests:
    return render(VALUE_SETS["everything"])


@pytest.fixture(
    scope="session", params=sorted(VALUE_SETS), ids=sorted(VALUE_SETS)
)
def manifests(request: pytest.FixtureRequest) -> Manifests:
    """Each rendering in turn."""
    return render(VALUE_SETS[request.param])
