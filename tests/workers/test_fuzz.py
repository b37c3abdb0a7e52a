"""A bounded property-based fuzz of the live API from its OpenAPI document.

Schemathesis generates requests for every operation of the running
service (real Redis, a real Dask cluster, the ci repository) from the
document the service publishes, and checks that no answer is a 5xx and
that every answer is the one documented: its status, content type,
headers and body schema. A fixed seed and example budget keep it
reproducible and to a few tens of seconds.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.service import running_api
from tests.workers.conftest import service_settings

pytestmark = pytest.mark.slow

#: Examples per operation and mode (valid, invalid): the fuzz's budget.
EXAMPLES = 20
SEED = 20261206
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_api(
    ci_repo, redis_cache_server, redis_control_server, thread_cluster
):
    settings = service_settings(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
    )
    with running_api(settings) as url:
        yield url
    for server in (redis_cache_server, redis_control_server):
        server.client().flushall()


def test_every_answer_is_documented_and_none_is_a_5xx(fuzzed_api):
    api = schemathesis.openapi.from_url(f"{fuzzed_api}/openapi.json")
    failures = {}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode)
            except Unsatisfiable:
                # No parameter to make invalid (health, metrics).
                assert mode == GenerationMode.NEGATIVE
            except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001
                # Every failure is reported below, not just the first.
                failures[f"{operation.label} ({mode.value})"] = failure
    assert not failures, "\n\n".join(
        f"{label}: {_summary(failure)}" for label, failure in failures.items()
    )
    # It did send what the budget allows (the metrics count requests).
    metrics = httpx.get(f"{fuzzed_api}/metrics").text
    sent = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("recreate_requests_total{")
    )
    assert sent >= 4 * EXAMPLES


def _fuzz(operation, mode):
    """Send the operation's generated requests; check every answer."""

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def fuzz(case):
        case.call_and_validate(checks=CHECKS)

    fuzz()


def _summary(failure: BaseException) -> str:
    """Return a failure's message, its sub-failures' too."""
    parts = [str(failure)]
    for sub in getattr(failure, "exceptions", ()):
        parts.append(str(sub).strip().splitlines()[0])
        parts.extend(
            line.strip()
            for line in str(sub).splitlines()
            if line.strip().startswith(("Received", "Documented"))
        )
    return " | ".join(parts)
