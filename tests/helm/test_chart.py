"""The chart renders, lints and validates, and wires the service right."""

from __future__ import annotations

import base64
import importlib
import json
from typing import Any

import helm_python
import kubernetes_validate
import pytest
from dask.utils import parse_bytes
from distributed.cli.dask_scheduler import main as dask_scheduler_cli

from tests.helm.conftest import VALUE_SETS
from tests.helm.rendering import (
    FULLNAME,
    KUBE_MINOR,
    REQUIRED,
    Manifests,
    flags,
    lint,
    merge,
    pod_specs,
    quantity_bytes,
    redis_bytes,
    render,
    selects,
)
from workers.api import create_app
from workers.cli import _build_parser
from workers.settings import Settings

#: Custom resources the chart may render: kubernetes-validate has no schema
#: for them (SchemaNotFoundError), so they are checked by hand below.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}

#: Settings the ConfigMap leaves out, and why.
NOT_IN_CONFIGMAP = {
    "redis_password": "a Secret, never a ConfigMap",
    "worker_memory_limit": "set per worker container from its memory limit",
    "redis_server": "embedded mode only",
    "embedded_cache_maxmemory": "embedded mode only",
    "embedded_workers_min": "embedded mode only",
    "embedded_workers_max": "embedded mode only",
    "embedded_dashboard": "embedded mode only",
    "auth_tokens": "a Secret, mounted as a file",
    "auth_tokens_file": "the API container's own variable, with its Secret",
}
#: Settings the chart sets before workers/settings.py has them.
#: RECREATE_THREADS is read by the science itself (recreate.numerics.threads),
#: not by the service's Settings.
PENDING_SETTINGS = {"threads"}
#: Settings whose chart value differs from the code's default on purpose.
CLUSTER_VALUES = {
    "butler_repo",
    "host",
    # "auto" would also mean "token" on 0.0.0.0; the chart says so plainly.
    "auth_mode",
    "cache_redis_url",
    "control_redis_url",
    "scheduler_address",
    # The API pod's two cores: render processes beside its interpreter
    # lock; the code's 0 keeps an embedded service and the tests to one
    # process.
    "region_render_processes",
}


# Render, lint, validate ------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_lint_is_clean_in_strict_mode(value_set: str) -> None:
    report = lint(VALUE_SETS[value_set])
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_every_manifest_validates_against_kubernetes(
    manifests: Manifests,
) -> None:
    kinds = set()
    for doc in manifests.docs:
        kinds.add(doc["kind"])
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            continue
        kubernetes_validate.validate(doc, KUBE_MINOR, strict=True)
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap"} <= kinds


def test_custom_resources_are_the_expected_ones(
    everything_manifests: Manifests,
) -> None:
    custom = {
        (doc["apiVersion"], doc["kind"])
        for doc in everything_manifests.docs
        if "." in doc["apiVersion"].split("/")[0]
        and not doc["apiVersion"].startswith(
            ("apps/", "networking.k8s.io/", "autoscaling/")
        )
    }
    assert custom == CUSTOM_RESOURCES
    for api_version, kind in custom:
        doc = next(
            d
            for d in everything_manifests.docs
            if (d["apiVersion"], d["kind"]) == (api_version, kind)
        )
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(doc, KUBE_MINOR, strict=True)


def test_notes_render(default_manifests: Manifests) -> None:
    assert f"tcp://{FULLNAME}-scheduler:8786" in default_manifests.notes
    assert "/api/v1/health" in default_manifests.notes


def test_missing_butler_repo_fails_naming_the_value() -> None:
    with pytest.raises(
        helm_python.HelmRenderError, match=r"config\.butlerRepo"
    ):
        render({})


def test_missing_worker_memory_limit_is_refused() -> None:
    values = merge(
        REQUIRED, {"worker": {"resources": {"limits": {"memory": None}}}}
    )
    with pytest.raises(helm_python.HelmValuesError, match="memory"):
        render(values)


# Wiring ----------------------------------------------------------------


def test_api_and_workers_reach_the_same_redis_and_scheduler(
    manifests: Manifests,
) -> None:
    api = manifests.environment(manifests.container("api"))
    worker = manifests.environment(manifests.container("worker"))
    for name in (
        "RECREATE_CACHE_REDIS_URL",
        "RECREATE_CONTROL_REDIS_URL",
        "RECREATE_SCHEDULER_ADDRESS",
        "RECREATE_REDIS_PASSWORD",
        "RECREATE_BUTLER_REPO",
    ):
        assert api[name], name
        assert api[name] == worker[name], name
    assert api["RECREATE_CACHE_REDIS_URL"] == (
        f"redis://{FULLNAME}-redis-cache:6379/0"
    )
    assert api["RECREATE_CONTROL_REDIS_URL"] == (
        f"redis://{FULLNAME}-redis-control:6379/0"
    )
    assert (
        api["RECREATE_SCHEDULER_ADDRESS"] == f"tcp://{FULLNAME}-scheduler:8786"
    )
    # The worker's command line names the same scheduler.
    assert (
        manifests.container("worker")["args"][1]
        == (api["RECREATE_SCHEDULER_ADDRESS"])
    )


def test_addresses_point_at_services_that_reach_the_pods(
    manifests: Manifests,
) -> None:
    config = manifests.config()
    targets = {
        "RECREATE_CACHE_REDIS_URL": ("redis-cache", "redis"),
        "RECREATE_CONTROL_REDIS_URL": ("redis-control", "redis"),
        "RECREATE_SCHEDULER_ADDRESS": ("scheduler", "tcp-comm"),
    }
    for variable, (component, port_name) in targets.items():
        host, port = config[variable].split("://")[1].split("/")[0].split(":")
        service = manifests.get("Service", host)
        (service_port,) = [
            p for p in service["spec"]["ports"] if p["port"] == int(port)
        ]
        assert service_port["targetPort"] == port_name
        pod = manifests.workload(component)["spec"]["template"]
        assert selects(
            {"matchLabels": service["spec"]["selector"]},
            pod["metadata"]["labels"],
        )
        (container,) = pod["spec"]["containers"]
        container_ports = {
            p["name"]: p["containerPort"] for p in container["ports"]
        }
        assert port_name in container_ports
    scheduler = flags(manifests.container("scheduler")["args"])
    assert (
        scheduler["port"]
        == config["RECREATE_SCHEDULER_ADDRESS"].rsplit(":", 1)[1]
    )


def test_redis_password_comes_from_one_secret(
    manifests: Manifests,
) -> None:
    api = manifests.environment(manifests.container("api"))
    reference = api["RECREATE_REDIS_PASSWORD"]
    assert reference[0] == "secret"
    assert "RECREATE_REDIS_PASSWORD" not in manifests.config()
    for component in ("redis-cache", "redis-control"):
        container = manifests.container(component)
        env = manifests.environment(container)
        assert env["REDIS_PASSWORD"] == reference
        assert env["REDISCLI_AUTH"] == reference
        assert flags(container["args"])["requirepass"] == "$(REDIS_PASSWORD)"


def test_chart_made_redis_secret_holds_the_given_password(
    everything_manifests: Manifests,
) -> None:
    secret = everything_manifests.get("Secret", f"{FULLNAME}-redis")
    stored = base64.b64decode(secret["data"]["redis-password"]).decode()
    assert stored == VALUE_SETS["everything"]["redis"]["password"]


def test_existing_redis_secret_is_used_and_none_made(
    production_manifests: Manifests,
) -> None:
    names = {s["metadata"]["name"] for s in production_manifests.all("Secret")}
    assert names == set()
    env = production_manifests.environment(
        production_manifests.container("worker")
    )
    assert env["RECREATE_REDIS_PASSWORD"] == (
        "secret",
        "recreate-redis",
        "password",
    )


def test_butler_credentials_reach_api_and_workers_only(
    everything_manifests: Manifests,
) -> None:
    m = everything_manifests
    assert m.config()["S3_ENDPOINT_URL"] == "https://s3.example.org"
    secret = m.get("Secret", f"{FULLNAME}-butler")
    assert base64.b64decode(secret["data"]["AWS_ACCESS_KEY_ID"]) == b"id"
    files = m.get("Secret", f"{FULLNAME}-butler-files")
    assert "db-auth.yaml" in files["data"]
    for component in ("api", "worker"):
        env = m.environment(m.container(component))
        assert f"secretRef:{FULLNAME}-butler" in env
        spec = m.workload(component)["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        assert "chmod 0600" in init["command"][-1]
        mounts = {v["name"]: v["mountPath"] for v in init["volumeMounts"]}
        assert mounts["butler-secrets"] == "/etc/butler/secrets"
        volumes = {v["name"]: v for v in spec["volumes"]}
        raw = volumes["butler-secrets-raw"]["secret"]
        assert raw["secretName"] == f"{FULLNAME}-butler-files"
        main_mounts = {
            v["name"]: v for v in m.container(component)["volumeMounts"]
        }
        assert main_mounts["butler-secrets"]["readOnly"] is True
    for component in ("scheduler", "redis-cache", "redis-control"):
        container = m.container(component)
        assert "envFrom" not in container
        spec = m.workload(component)["spec"]["template"]["spec"]
        assert "initContainers" not in spec


@pytest.mark.parametrize(
    ("value_set", "memory"), [("defaults", "4Gi"), ("production", "8Gi")]
)
def test_worker_memory_limit_is_what_dask_is_told(
    value_set: str, memory: str
) -> None:
    manifests = render(VALUE_SETS[value_set])
    container = manifests.container("worker")
    limit = container["resources"]["limits"]["memory"]
    args = flags(container["args"])
    assert limit == memory
    assert args["memory-limit"] == limit
    assert parse_bytes(args["memory-limit"]) == quantity_bytes(limit)
    env = manifests.environment(container)
    assert env["RECREATE_WORKER_MEMORY_LIMIT"] == limit


def test_worker_threads_and_resources_come_from_values() -> None:
    manifests = render(merge(REQUIRED, {"dask": {"workerThreads": 3}}))
    container = manifests.container("worker")
    args = flags(container["args"])
    assert args["nthreads"] == "3"
    assert args["resources"] == "RECOMPUTE=1"
    assert args["name"] == "$(POD_NAME)"
    # Dask's scratch directory lies on a writable emptyDir.
    spec = manifests.workload("worker")["spec"]["template"]["spec"]
    scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    (mount,) = [
        v
        for v in container["volumeMounts"]
        if args["local-directory"].startswith(v["mountPath"] + "/")
    ]
    assert mount["name"] in scratch
    assert not mount.get("readOnly", False)
    env = manifests.environment(container)
    assert env["RECREATE_WORKER_THREADS"] == "3"
    assert env["POD_NAME"] == ("field", "metadata.name")


def test_redis_cache_evicts_and_control_store_persists(
    manifests: Manifests,
) -> None:
    cache = manifests.container("redis-cache")
    cache_args = flags(cache["args"])
    assert cache["command"] == ["redis-server"]
    assert cache_args["maxmemory-policy"] == "allkeys-lru"
    assert redis_bytes(cache_args["maxmemory"]) > 0
    assert cache_args["save"] == ""
    assert cache_args["appendonly"] == "no"
    assert cache_args["lazyfree-lazy-eviction"] == "yes"
    control = manifests.container("redis-control")
    control_args = flags(control["args"])
    assert control_args["maxmemory-policy"] == "noeviction"
    assert control_args["appendonly"] == "yes"
    control_set = manifests.workload("redis-control")
    (claim,) = control_set["spec"]["volumeClaimTemplates"]
    mounts = {v["name"]: v["mountPath"] for v in control["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == control_args["dir"]


def test_redis_memory_leaves_headroom(manifests: Manifests) -> None:
    for component in ("redis-cache", "redis-control"):
        container = manifests.container(component)
        maxmemory = redis_bytes(flags(container["args"])["maxmemory"])
        limit = quantity_bytes(container["resources"]["limits"]["memory"])
        assert maxmemory <= 0.8 * limit, component


def test_probes_use_routes_the_api_serves(manifests: Manifests) -> None:
    routes = set(create_app(Settings()).openapi()["paths"])
    container = manifests.container("api")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/api/v1/health"
        assert get["path"] in routes
        assert get["port"] == "http"
    assert ports["http"] == int(flags(container["args"])["port"])
    assert "/metrics" in routes


def test_scheduler_serves_health_metrics_and_adaptive_target(
    manifests: Manifests,
) -> None:
    container = manifests.container("scheduler")
    env = manifests.environment(container)
    routes = json.loads(env["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"])
    for module in (
        "distributed.http.health",
        "distributed.http.scheduler.prometheus",
        "distributed.http.scheduler.api",
        "distributed.http.scheduler.info",
        "distributed.http.scheduler.json",
        "distributed.http.proxy",
        "distributed.http.statics",
    ):
        assert module in routes
    for module in routes:
        importlib.import_module(module)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert flags(container["args"])["dashboard-address"] == (
        f":{ports['http-dashboard']}"
    )
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {
            "path": "/health",
            "port": "http-dashboard",
        }


def test_commands_are_accepted_by_the_real_command_lines(
    manifests: Manifests,
) -> None:
    parser = _build_parser()
    for component in ("api", "worker"):
        container = manifests.container(component)
        assert container["command"] == ["recreate"]
        parsed = parser.parse_args(container["args"])
        assert parsed.command == container["args"][0]
    worker = parser.parse_args(manifests.container("worker")["args"])
    assert worker.resources == "RECOMPUTE=1"
    scheduler = manifests.container("scheduler")
    assert scheduler["command"] == ["dask"]
    assert scheduler["args"][0] == "scheduler"
    context = dask_scheduler_cli.make_context(
        "dask scheduler", list(scheduler["args"][1:])
    )
    assert str(context.params["port"]) == "8786"


def test_configmap_carries_every_cluster_setting(
    production_manifests: Manifests,
) -> None:
    config = production_manifests.config()
    fields = set(Settings.model_fields)
    assert set(NOT_IN_CONFIGMAP) <= fields
    expected = fields - set(NOT_IN_CONFIGMAP)
    present = {
        key.removeprefix("RECREATE_").lower()
        for key in config
        if key.startswith("RECREATE_")
    }
    assert expected - present == set()
    assert present - fields <= PENDING_SETTINGS
    for name in NOT_IN_CONFIGMAP:
        assert f"RECREATE_{name.upper()}" not in config


def test_configmap_parses_and_matches_the_code_defaults(
    default_manifests: Manifests,
) -> None:
    config = default_manifests.config()
    given = {
        name: config[f"RECREATE_{name.upper()}"]
        for name in Settings.model_fields
        if f"RECREATE_{name.upper()}" in config
    }
    settings = Settings(**given)
    for name in given.keys() - CLUSTER_VALUES:
        default = Settings.model_fields[name].default
        assert getattr(settings, name) == default, name


# Hardening -------------------------------------------------------------


def test_every_container_is_hardened_and_bounded(
    manifests: Manifests,
) -> None:
    for workload, spec in pod_specs(manifests):
        assert spec["automountServiceAccountToken"] is False, workload
        assert spec["enableServiceLinks"] is False, workload
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        assert spec["securityContext"]["runAsUser"] != 0, workload
        containers = spec["containers"] + spec.get("initContainers", [])
        for container in containers:
            where = f"{workload}/{container['name']}"
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), where
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"], where
            mounts = {
                v["mountPath"] for v in container.get("volumeMounts", [])
            }
            assert mounts, f"{where} has no writable scratch"


def test_init_containers_are_rendered_only_with_credential_files(
    manifests: Manifests,
) -> None:
    for workload, spec in pod_specs(manifests):
        for init in spec.get("initContainers", []):
            assert init["name"] == "copy-butler-secrets", workload


def test_checksum_follows_the_config(default_manifests: Manifests) -> None:
    def checksums(manifests: Manifests) -> dict[str, str]:
        return {
            component: manifests.workload(component)["spec"]["template"][
                "metadata"
            ]["annotations"]["checksum/config"]
            for component in ("api", "worker")
        }

    before = checksums(default_manifests)
    assert len(set(before.values())) == 1
    changed = render(merge(REQUIRED, {"config": {"cacheTtlSeconds": 3600}}))
    after = checksums(changed)
    for component in before:
        assert after[component] != before[component]
    unrelated = render(merge(REQUIRED, {"api": {"replicaCount": 4}}))
    assert checksums(unrelated) == before


# Network policy --------------------------------------------------------


def _pod_labels(manifests: Manifests, component: str) -> dict[str, str]:
    workload = manifests.workload(component)
    return workload["spec"]["template"]["metadata"]["labels"]


def test_only_labelled_clients_reach_redis(manifests: Manifests) -> None:
    policy = manifests.get("NetworkPolicy", f"{FULLNAME}-redis")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    selected = {
        component
        for component in (
            "api",
            "worker",
            "scheduler",
            "redis-cache",
            "redis-control",
        )
        if selects(spec["podSelector"], _pod_labels(manifests, component))
    }
    assert selected == {"redis-cache", "redis-control"}
    (rule,) = spec["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"recreate-redis-client": "true"}}}
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    clients = {
        component
        for component in ("api", "worker", "scheduler")
        if _pod_labels(manifests, component).get("recreate-redis-client")
        == "true"
    }
    assert clients == {"api", "worker"}


def test_only_dask_clients_reach_the_scheduler(manifests: Manifests) -> None:
    policy = manifests.get("NetworkPolicy", f"{FULLNAME}-scheduler")
    spec = policy["spec"]
    assert selects(spec["podSelector"], _pod_labels(manifests, "scheduler"))
    assert not selects(spec["podSelector"], _pod_labels(manifests, "worker"))
    comm, dashboard = spec["ingress"]
    assert comm["ports"] == [{"protocol": "TCP", "port": 8786}]
    assert comm["from"] == [
        {"podSelector": {"matchLabels": {"recreate-dask-client": "true"}}}
    ]
    for component in ("api", "worker"):
        labels = _pod_labels(manifests, component)
        assert labels["recreate-dask-client"] == "true"
    assert dashboard["ports"] == [{"protocol": "TCP", "port": 8787}]


def test_network_policies_can_be_turned_off() -> None:
    manifests = render(merge(REQUIRED, {"networkPolicy": {"enabled": False}}))
    assert manifests.all("NetworkPolicy") == []


# Optional resources ----------------------------------------------------


def test_optional_resources_are_off_by_default(
    default_manifests: Manifests,
) -> None:
    kinds = {doc["kind"] for doc in default_manifests.docs}
    assert not kinds & {"Ingress", "ServiceMonitor", "HorizontalPodAutoscaler"}
    worker = default_manifests.workload("worker")
    assert worker["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("switch", "kind"),
    [
        ("ingress", "Ingress"),
        ("serviceMonitor", "ServiceMonitor"),
        ("autoscaling", "HorizontalPodAutoscaler"),
    ],
)
def test_each_optional_resource_follows_its_switch(
    switch: str, kind: str
) -> None:
    manifests = render(merge(REQUIRED, {switch: {"enabled": True}}))
    assert len(manifests.all(kind)) == 1
    others = {"Ingress", "ServiceMonitor", "HorizontalPodAutoscaler"} - {kind}
    assert not {doc["kind"] for doc in manifests.docs} & others


def test_ingress_routes_the_api_only(everything_manifests: Manifests) -> None:
    (ingress,) = everything_manifests.all("Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "data.example.org"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/api/v1"
    backend = path["backend"]["service"]
    service = everything_manifests.get("Service", backend["name"])
    assert backend["port"]["name"] in {
        p["name"] for p in service["spec"]["ports"]
    }
    assert (
        service["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    )


def test_service_monitor_scrapes_api_and_scheduler_metrics(
    everything_manifests: Manifests,
) -> None:
    (monitor,) = everything_manifests.all("ServiceMonitor")
    selector = monitor["spec"]["selector"]
    scraped: dict[str, set[str]] = {}
    for service in everything_manifests.all("Service"):
        if not selects(selector, service["metadata"]["labels"]):
            continue
        port_names = {p["name"] for p in service["spec"]["ports"]}
        component = service["metadata"]["labels"][
            "app.kubernetes.io/component"
        ]
        scraped[component] = {
            endpoint["path"]
            for endpoint in monitor["spec"]["endpoints"]
            if endpoint["port"] in port_names
        }
    assert scraped == {"api": {"/metrics"}, "scheduler": {"/metrics"}}


def test_autoscaler_follows_the_schedulers_desired_workers(
    everything_manifests: Manifests,
) -> None:
    m = everything_manifests
    worker = m.workload("worker")
    assert "replicas" not in worker["spec"]
    (hpa,) = m.all("HorizontalPodAutoscaler")
    spec: dict[str, Any] = hpa["spec"]
    target = spec["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        worker["metadata"]["name"],
    )
    (metric,) = spec["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == (
        "dask_scheduler_desired_workers"
    )
    selector = metric["external"]["metric"]["selector"]["matchLabels"]
    assert selector == {"service": f"{FULLNAME}-scheduler"}
    m.get("Service", selector["service"])
    assert metric["external"]["target"] == {
        "type": "AverageValue",
        "averageValue": "1",
    }
    scale_down = spec["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 60
    assert {"type": "Percent", "value": 25, "periodSeconds": 60} in (
        scale_down["policies"]
    )
    assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]


# Labels ----------------------------------------------------------------


def test_every_resource_is_labelled(manifests: Manifests) -> None:
    for doc in manifests.docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "test"
        assert labels["app.kubernetes.io/name"] == "recreate"
        if doc["kind"] in {"Deployment", "StatefulSet", "Service"}:
            component = labels["app.kubernetes.io/component"]
            pod_labels = (
                doc["spec"]["template"]["metadata"]["labels"]
                if "template" in doc["spec"]
                else doc["spec"]["selector"]
            )
            assert pod_labels["app.kubernetes.io/component"] == component


# Who may write -----------------------------------------------------------


def test_the_token_table_reaches_the_api_as_a_file_only(
    everything_manifests: Manifests,
) -> None:
    api = everything_manifests.container("api")
    env = {e["name"]: e.get("value") for e in api["env"]}
    path = env["RECREATE_AUTH_TOKENS_FILE"]
    (mount,) = [m for m in api["volumeMounts"] if m["name"] == "auth-tokens"]
    assert path == f"{mount['mountPath']}/tokens"
    pod = everything_manifests.workload("api")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "auth-tokens"]
    secret = everything_manifests.get("Secret", volume["secret"]["secretName"])
    table = base64.b64decode(secret["data"]["tokens"]).decode()
    assert table.startswith("alice:write:")
    # Workers never see it; the ConfigMap neither.
    worker = everything_manifests.container("worker")
    assert "RECREATE_AUTH_TOKENS_FILE" not in {
        e["name"] for e in worker["env"]
    }
    assert "alice" not in json.dumps(everything_manifests.config())
    assert everything_manifests.config()["RECREATE_AUTH_MODE"] == "token"


def test_without_tokens_nothing_is_mounted(
    default_manifests: Manifests,
) -> None:
    api = default_manifests.container("api")
    assert "RECREATE_AUTH_TOKENS_FILE" not in {e["name"] for e in api["env"]}
    assert not [m for m in api["volumeMounts"] if m["name"] == "auth-tokens"]


RUBIN = merge(
    REQUIRED,
    {
        "global": {"baseUrl": "https://data.lsst.cloud"},
        "auth": {"mode": "gafaelfawr"},
        "ingress": {"enabled": True, "gafaelfawr": {"enabled": True}},
        "networkPolicy": {
            "apiFrom": [
                {
                    "namespaceSelector": {
                        "matchLabels": {
                            "kubernetes.io/metadata.name": "ingress-nginx"
                        }
                    }
                }
            ]
        },
    },
)


def test_behind_gafaelfawr_the_ingress_asks_for_a_scope() -> None:
    manifests = render(RUBIN)
    assert not manifests.all("Ingress")
    (ingress,) = manifests.all("GafaelfawrIngress")
    assert ingress["apiVersion"] == "gafaelfawr.lsst.io/v1alpha1"
    assert ingress["config"]["scopes"] == {"all": ["read:image"]}
    assert ingress["config"]["baseUrl"] == "https://data.lsst.cloud"
    (rule,) = ingress["template"]["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/api/v1"
    assert manifests.config()["RECREATE_AUTH_MODE"] == "gafaelfawr"
    # Only the ingress controller may reach the API (and set the header).
    policy = manifests.get("NetworkPolicy", f"{FULLNAME}-api")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == RUBIN["networkPolicy"]["apiFrom"]
    for doc in manifests.docs:
        if doc["kind"] != "GafaelfawrIngress":
            kubernetes_validate.validate(doc, KUBE_MINOR, strict=True)


def test_a_gafaelfawr_ingress_needs_the_gafaelfawr_mode() -> None:
    values = merge(RUBIN, {"auth": {"mode": "token"}})
    with pytest.raises(helm_python.HelmRenderError, match=r"auth\.mode"):
        render(values)


def test_no_auth_is_not_a_chart_mode() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="mode"):
        render(merge(REQUIRED, {"auth": {"mode": "none"}}))
