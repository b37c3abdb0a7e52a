"""The chart's solution store: an object-store URI, or a shared claim."""

from __future__ import annotations

import pytest

from tests.helm.rendering import (
    FULLNAME,
    REQUIRED,
    Manifests,
    merge,
    render,
)
from workers.settings import Settings

MOUNT = "/var/lib/recreate/solutions"
CLAIM = f"{FULLNAME}-solutions"


def _mounts(manifests: Manifests, component: str) -> dict[str, str]:
    """Return a component's volume mounts by volume name."""
    container = manifests.container(component)
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


def _volumes(manifests: Manifests, component: str) -> dict[str, dict]:
    """Return a component's pod volumes by name."""
    pod = manifests.workload(component)["spec"]["template"]["spec"]
    return {volume["name"]: volume for volume in pod.get("volumes", [])}


def test_a_uri_reaches_api_and_workers_and_mounts_nothing(
    production_manifests: Manifests,
) -> None:
    for component in ("api", "worker"):
        env = production_manifests.environment(
            production_manifests.container(component)
        )
        assert env["RECREATE_SOLUTION_STORE"] == "s3://recreate-solutions/dp1/"
        assert "solutions" not in _mounts(production_manifests, component)
    assert production_manifests.all("PersistentVolumeClaim") == []
    settings = Settings(
        solution_store=production_manifests.config()["RECREATE_SOLUTION_STORE"]
    )
    assert settings.redis_config().solution_store.startswith("s3://")


def test_a_claim_is_made_shared_kept_and_mounted_where_the_config_says(
    everything_manifests: Manifests,
) -> None:
    claim = everything_manifests.get("PersistentVolumeClaim", CLAIM)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    # Solutions outlive an uninstall: they are the release's state.
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == (
        "keep"
    )
    labels = claim["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "solution-store"
    assert everything_manifests.config()["RECREATE_SOLUTION_STORE"] == MOUNT
    for component in ("api", "worker"):
        assert _mounts(everything_manifests, component)["solutions"] == MOUNT
        volume = _volumes(everything_manifests, component)["solutions"]
        assert volume["persistentVolumeClaim"]["claimName"] == CLAIM
    for component in ("scheduler", "redis-cache", "redis-control"):
        assert "solutions" not in _volumes(everything_manifests, component)


def test_a_uri_wins_over_the_claim() -> None:
    manifests = render(
        merge(
            REQUIRED,
            {
                "config": {"solutionStore": "s3://bucket/solutions/"},
                "solutionStore": {"persistence": {"enabled": True}},
            },
        )
    )
    assert manifests.all("PersistentVolumeClaim") == []
    assert manifests.config()["RECREATE_SOLUTION_STORE"] == (
        "s3://bucket/solutions/"
    )


def test_without_a_store_the_notes_say_solutions_are_not_durable(
    default_manifests: Manifests,
) -> None:
    assert "RECREATE_SOLUTION_STORE" not in default_manifests.config()
    assert "none: solutions live only in the Redis cache" in (
        default_manifests.notes
    )
    assert default_manifests.all("PersistentVolumeClaim") == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"solutionStore": {"mountPath": "relative"}}, "mountPath"),
        (
            {"solutionStore": {"persistence": {"accessMode": "ReadOnlyMany"}}},
            "accessMode",
        ),
        ({"config": {"regionThreads": 0}}, "regionThreads"),
    ],
)
def test_bad_store_values_are_refused_naming_them(values, message) -> None:
    with pytest.raises(Exception, match=message):
        render(merge(REQUIRED, values))
