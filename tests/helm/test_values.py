"""values.yaml: schema, documentation, and one block per component."""

from __future__ import annotations

import re
from typing import Any

import helm_python
import pytest
import yaml

from tests.helm import values_doc
from tests.helm.rendering import (
    CHART_DIR,
    REQUIRED,
    chart,
    merge,
    production_values,
)

#: Component blocks and the template-file prefix of each.
COMPONENTS = {
    "api": "api-",
    "scheduler": "scheduler-",
    "worker": "worker-",
    "redisCache": "redis-cache-",
    "redisControl": "redis-control-",
}
#: Shared sub-blocks that belong to one component's templates only.
OWNED_SHARED = {
    ".Values.autoscaling": "worker-",
    ".Values.redis.cache": "redis-cache-",
    ".Values.redis.control": "redis-control-",
}


def _values() -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def _templates() -> dict[str, str]:
    return {
        path.name: path.read_text()
        for path in sorted((CHART_DIR / "templates").iterdir())
    }


# Schema ----------------------------------------------------------------


def test_defaults_and_production_values_pass_the_schema() -> None:
    chart().validate_schema(REQUIRED)
    chart().validate_schema(production_values())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"api": {"replicaCount": -1}}, r"/api/replicaCount.*minimum"),
        ({"scheduler": {"replicaCount": 2}}, r"/scheduler/replicaCount"),
        ({"redisCache": {"replicaCount": 3}}, r"/redisCache/replicaCount"),
        (
            {"worker": {"resources": {"limits": {"memory": "4GB"}}}},
            r"/worker/resources/limits/memory",
        ),
        (
            {"api": {"resources": {"limits": {"cpu": None}}}},
            r"/api/resources/limits.*cpu",
        ),
        ({"config": {"defaultFormat": "png"}}, r"/config/defaultFormat"),
        ({"config": {"chunkBytes": 10}}, r"/config/chunkBytes"),
        ({"redis": {"cache": {"maxmemory": "lots"}}}, r"/redis/cache"),
        ({"autoscaling": {"minReplicas": 0}}, r"/autoscaling/minReplicas"),
        ({"wroker": {}}, r"additional properties 'wroker'"),
    ],
)
def test_schema_rejects_bad_values_naming_them(
    values: dict[str, Any], message: str
) -> None:
    bad = merge(REQUIRED, values)
    with pytest.raises(helm_python.HelmValuesError, match=message):
        chart().validate_schema(bad)
    with pytest.raises(helm_python.HelmValuesError, match=message):
        chart().render(bad, name="test", namespace="recreate", is_install=True)


def test_schema_lets_a_parent_chart_pass_globals() -> None:
    chart().validate_schema(merge(REQUIRED, {"global": {"host": "x.org"}}))


# Component blocks ------------------------------------------------------


def test_component_blocks_have_identical_keys() -> None:
    values = _values()
    shapes = {
        name: (sorted(values[name]), sorted(values[name]["image"]))
        for name in COMPONENTS
    }
    assert len({repr(shape) for shape in shapes.values()}) == 1, shapes


def test_every_component_template_reads_only_its_own_block() -> None:
    reference = re.compile(r"\.Values\.([A-Za-z0-9_]+)")
    for name, text in _templates().items():
        read = set(reference.findall(text)) & set(COMPONENTS)
        owner = next(
            (c for c, prefix in COMPONENTS.items() if name.startswith(prefix)),
            None,
        )
        if owner is None:
            assert read == set(), f"{name} reads component blocks {read}"
        else:
            assert read <= {owner}, f"{name} reads {read - {owner}}"
        if name == "NOTES.txt":
            continue  # the release summary may mention any shared block
        for shared, prefix in OWNED_SHARED.items():
            if shared in text:
                assert name.startswith(prefix), f"{name} reads {shared}"


def test_every_component_has_its_templates() -> None:
    names = set(_templates())
    for prefix in COMPONENTS.values():
        assert any(n.startswith(prefix) for n in names), prefix
    assert {
        "_helpers.tpl",
        "NOTES.txt",
        "configmap.yaml",
        "secret.yaml",
        "networkpolicy.yaml",
        "ingress.yaml",
        "servicemonitor.yaml",
        "worker-hpa.yaml",
    } <= names


def test_butler_repo_is_null_and_required_in_the_configmap() -> None:
    assert _values()["config"]["butlerRepo"] is None
    configmap = _templates()["configmap.yaml"]
    assert re.search(
        r'required "config\.butlerRepo must be set[^"]*" '
        r"\.Values\.config\.butlerRepo",
        configmap,
    )


def test_every_workload_template_carries_the_config_checksum() -> None:
    templates = _templates()
    for name in ("api-deployment.yaml", "worker-deployment.yaml"):
        assert "checksum/config" in templates[name]
        assert (
            'include (print $.Template.BasePath "/configmap.yaml")'
            in (templates[name])
        )


# Documentation ---------------------------------------------------------


def test_every_value_is_documented() -> None:
    text = (CHART_DIR / "values.yaml").read_text()
    assert values_doc.undocumented_leaves(text) == []
    documented = values_doc.documented_keys(text)
    assert all(description for _, description in documented.values())


def test_readme_table_lists_every_value() -> None:
    text = (CHART_DIR / "values.yaml").read_text()
    readme = (CHART_DIR / "README.md").read_text()
    assert values_doc.readme_keys(readme) == list(
        values_doc.documented_keys(text)
    )
    assert values_doc.readme_table(readme) == values_doc.table(text), (
        "README.md is stale: run python -m tests.helm.values_doc"
    )


def test_readme_explains_deployment_and_autoscaling() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    for heading in (
        "## What runs, and who talks to whom",
        "### Install",
        "### Point it at a Butler repository",
        "### Scale workers",
        "#### Why an HPA, not the dask-kubernetes operator",
        "### Watch metrics",
        "## Values",
    ):
        assert heading in readme


def test_the_top_level_readme_has_a_deploy_section() -> None:
    readme = (CHART_DIR.parents[1] / "README.md").read_text()
    section = readme.split("## Deploying on Kubernetes", 1)[1]
    assert "helm install" in section
    assert "helm/recreate" in section
