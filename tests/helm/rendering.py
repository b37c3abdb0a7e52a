"""Render the chart with the real Helm engine and look into the result."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "recreate"
PRODUCTION_VALUES = CHART_DIR / "values-production.yaml"
RELEASE = "test"
NAMESPACE = "recreate"
FULLNAME = "test-recreate"
KUBE_MINOR = "1.30"
KUBE_VERSION = "v1.30.0"
#: The one value the chart cannot default.
REQUIRED = {"config": {"butlerRepo": "s3://butler-repo/dp1/butler.yaml"}}

_CHART: helm_python.Chart | None = None


def chart() -> helm_python.Chart:
    """Return the loaded chart (loaded once)."""
    global _CHART  # noqa: PLW0603
    if _CHART is None:
        _CHART = helm_python.Chart.load(CHART_DIR)
    return _CHART


def merge(base: dict[str, Any], *overrides: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` deep-merged with ``overrides`` (later ones win)."""
    result = copy.deepcopy(base)
    for override in overrides:
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = merge(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def production_values() -> dict[str, Any]:
    """Return the production-like example values."""
    return yaml.safe_load(PRODUCTION_VALUES.read_text())


@dataclass
class Manifests:
    """Every document of one rendering, by kind and name."""

    docs: list[dict[str, Any]]
    notes: str
    sources: dict[str, str] = field(default_factory=dict)

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Return every document of a kind."""
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """Return the one document of a kind and name."""
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind} {name}: {len(found)} found"
        return found[0]

    def workload(self, component: str) -> dict[str, Any]:
        """Return the Deployment or StatefulSet of a component."""
        found = [
            doc
            for doc in self.docs
            if doc["kind"] in {"Deployment", "StatefulSet"}
            and doc["metadata"]["labels"]["app.kubernetes.io/component"]
            == component
        ]
        assert len(found) == 1, f"{component}: {len(found)} workloads"
        return found[0]

    def container(self, component: str) -> dict[str, Any]:
        """Return the (only) main container of a component."""
        containers = self.workload(component)["spec"]["template"]["spec"][
            "containers"
        ]
        assert len(containers) == 1
        return containers[0]

    def config(self) -> dict[str, str]:
        """Return the data of the service's ConfigMap."""
        return self.get("ConfigMap", f"{FULLNAME}-config")["data"]

    def environment(self, container: dict[str, Any]) -> dict[str, Any]:
        """Return what a container's environment resolves to.

        ConfigMap and Secret values are resolved; a value from a Secret
        that the chart does not make (or a field reference) stays a
        ``("secret", name, key)`` or ``("field", path)`` tuple, and a
        whole Secret in envFrom is listed under ``("secretRef", name)``.
        """
        env: dict[str, Any] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                name = source["configMapRef"]["name"]
                env.update(self.get("ConfigMap", name)["data"])
            else:
                name = source["secretRef"]["name"]
                env[f"secretRef:{name}"] = ("secretRef", name)
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
                continue
            ref = item["valueFrom"]
            if "secretKeyRef" in ref:
                key_ref = ref["secretKeyRef"]
                env[item["name"]] = ("secret", key_ref["name"], key_ref["key"])
            else:
                env[item["name"]] = ("field", ref["fieldRef"]["fieldPath"])
        return env


def render(values: dict[str, Any] | None = None) -> Manifests:
    """Render the chart as an install with ``values``."""
    rendered = chart().render(
        values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    docs: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Manifests(docs=docs, notes=notes, sources=rendered)


def lint(values: dict[str, Any]) -> dict[str, Any]:
    """Lint the chart strictly, against the pinned Kubernetes version."""
    return helm_python.lint(
        CHART_DIR, values, strict=True, kube_version=KUBE_VERSION
    )


def pod_specs(manifests: Manifests) -> list[tuple[str, dict[str, Any]]]:
    """Return (workload name, pod spec) of every Deployment/StatefulSet."""
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for doc in manifests.docs
        if doc["kind"] in {"Deployment", "StatefulSet"}
    ]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Return whether a Kubernetes label selector selects ``labels``."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[A-Za-z]*)$")
_QUANTITY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_REDIS_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 2**10,
    "m": 10**6,
    "mb": 2**20,
    "g": 10**9,
    "gb": 2**30,
}


def quantity_bytes(text: str) -> int:
    """Return the bytes of a Kubernetes memory quantity (``4Gi``)."""
    match = _QUANTITY.match(text)
    assert match, f"not a memory quantity: {text!r}"
    return int(float(match["number"]) * _QUANTITY_UNITS[match["unit"]])


def redis_bytes(text: str) -> int:
    """Return the bytes of a redis.conf memory size (``1gb`` = 2**30)."""
    match = _QUANTITY.match(text)
    assert match, f"not a Redis memory size: {text!r}"
    return int(match["number"]) * _REDIS_UNITS[match["unit"].lower()]


def flags(args: list[str]) -> dict[str, str]:
    """Return ``--flag value`` pairs of a command line."""
    result: dict[str, str] = {}
    for index, arg in enumerate(args):
        if arg.startswith("--") and index + 1 < len(args):
            result[arg[2:]] = args[index + 1]
    return result
