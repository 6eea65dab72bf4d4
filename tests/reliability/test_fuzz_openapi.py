"""Schemathesis over every operation of the service's own OpenAPI document, over real HTTP.

Each request is sent with a valid key for its route (a tenant key for /tasks and /predict, the
admin token for /admin), so generated data reaches validation and the handlers instead of
stopping at 401 (refusing bad keys is test_security.py's job). Per operation: schemathesis'
coverage cases (boundaries, wrong types, missing and unknown fields, unexpected methods), then
Hypothesis-driven positive and negative fuzzing. Every response must be below 500, arrive
within the timeout, match the documented status codes and schemas, and every 4xx must be in the
documented error format, a 422 naming the field and the reason.

CI runs LISTSERVE_FUZZ_EXAMPLES (default 50) fuzzed examples per operation, positive and
negative mixed, on SQLite and on PostgreSQL; set it higher (e.g. 1000) to fuzz for longer.
"""

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability.conftest import (
    ADMIN,
    LiveServer,
    assert_error_format,
    create_tenant,
    live_server,
    train_task,
)
from tests.service.conftest import pg_schema, service_settings

EXAMPLES = int(os.environ.get("LISTSERVE_FUZZ_EXAMPLES", "50"))
REQUEST_TIMEOUT_SECONDS = 10.0
OPERATIONS = [
    "POST /tasks",
    "GET /tasks",
    "GET /tasks/{task_id}",
    "DELETE /tasks/{task_id}",
    "POST /predict/{task_id}",
    "POST /predict",
    "POST /tasks/{task_id}/examples",
    "POST /tasks/{task_id}/retrain",
    "POST /tasks/{task_id}/feedback",
    "GET /tasks/{task_id}/suggestions",
    "GET /tasks/{task_id}/versions",
    "POST /tasks/{task_id}/versions/{version}/promote",
    "GET /tasks/{task_id}/jobs",
    "GET /jobs/{job_id}",
    "GET /jobs/{job_id}/events",
    "POST /jobs/{job_id}/cancel",
    "POST /admin/tenants",
    "GET /admin/tenants",
    "POST /admin/tenants/{tenant_id}/keys",
    "DELETE /admin/tenants/{tenant_id}/keys/{key_id}",
    "DELETE /admin/tenants/{tenant_id}",
    "GET /admin/jobs",
    "GET /admin/jobs/{job_id}",
    "GET /admin/jobs/{job_id}/events",
    "POST /admin/jobs/{job_id}/cancel",
    "GET /admin/tasks",
    "GET /admin/tasks/{task_id}",
    "GET /admin/serving",
    "GET /admin/serving/history",
    "GET /health",
    "GET /ready",
    "GET /metrics",
    "GET /info",
]
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


class Target:
    """The running service, a tenant with one trained task, and what the fuzzer saw."""

    def __init__(self, live: LiveServer, tenant: dict[str, str], task: dict) -> None:
        self.live = live
        self.tenant = tenant
        self.task = task
        self.schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        self.statuses: Counter[tuple[str, int]] = Counter()

    def headers_for(self, case: Case) -> dict[str, str]:
        return ADMIN if case.operation.path.startswith("/admin") else self.tenant

    def aim(self, case: Case, at_real_ids: bool) -> None:
        """Point path ids at the trained task and its job, so the handlers behind the 404 run
        too; never for DELETE, which would remove the task the other cases aim at."""
        ids = {"task_id": self.task["id"], "job_id": self.task["job"]["id"], "version": 1}
        if at_real_ids and case.method.upper() != "DELETE":
            for name, value in ids.items():
                if name in (case.path_parameters or {}):
                    case.path_parameters[name] = value

    def send(self, case: Case) -> None:
        """Send one case and apply every check; a timeout (a hang) fails the test."""
        headers = self.headers_for(case)
        response = case.call(
            base_url=self.live.url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
        )
        self.statuses[(case.operation.label, response.status_code)] += 1
        assert response.status_code < 500, _describe(case, response)
        if 400 <= response.status_code < 500:
            assert_error_format(response)
        case.validate_response(response, checks=CHECKS, headers=headers)


def _describe(case: Case, response: requests.Response) -> str:
    return f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(request, tmp_path_factory, tiny_roberta_path) -> Iterator[Target]:
    """The service on each registry backend (PostgreSQL refuses some text SQLite stores)."""
    overrides: dict[str, Any] = {
        "predict_rate_per_second": 1e6,  # one tenant fuzzes: do not fuzz the rate limiter
        "predict_burst": 1_000_000,
        "max_training_steps": 50,  # a generated task that passes validation trains quickly
        "max_active_jobs_per_tenant": 1,
    }
    with pg_schema() as pg_url:
        if request.param == "postgresql":
            overrides["database_url"] = pg_url
        settings = service_settings(
            tmp_path_factory.mktemp(f"fuzz-{request.param}"), tiny_roberta_path, **overrides
        )
        with live_server(settings) as live, live.client() as client:
            tenant = create_tenant(client, "fuzz")
            target = Target(live, tenant, train_task(client, tenant))
            yield target
    by_status: Counter[int] = Counter()
    for (_, status), count in target.statuses.items():
        by_status[status] += count
    print(
        f"\nfuzz on {request.param}: {by_status.total()} requests over {len(OPERATIONS)} "
        f"operations, {EXAMPLES} fuzzed examples per operation; statuses {dict(by_status)}"
    )


def test_every_operation_is_fuzzed(target: Target) -> None:
    """A new route must join OPERATIONS, so no part of the API escapes the fuzzer."""
    labels = [result.ok().label for result in target.schema.get_all_operations()]
    assert sorted(labels) == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_operation(target: Target, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = target.schema[path][method]
    modes = list(GenerationMode)
    coverage = target.schema.iter_coverage_cases(
        operation,
        generation_modes=modes,
        generation_config=target.schema.config.generation_for(operation=operation),
    )
    for index, case in enumerate(coverage):
        target.aim(case, at_real_ids=index % 2 == 1)
        target.send(case)

    strategy = st.one_of(*(operation.as_strategy(mode) for mode in modes))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=strategy, at_real_ids=st.booleans())
    def fuzz(case: Case, at_real_ids: bool) -> None:
        target.aim(case, at_real_ids)
        target.send(case)

    fuzz()
    seen = {status for (name, status), _ in target.statuses.items() if name == label}
    assert seen - {401}, f"{label}: every request stopped at authentication"
