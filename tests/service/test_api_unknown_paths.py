"""Every path no route serves answers 404 in the error format: never a redirect to a rewritten
path (Starlette's trailing-slash redirect answered `POST /predict/%2e%2e%2f` with a bare 307)."""

import pytest

from tests.service.conftest import running_api, service_settings

UNKNOWN_PATHS = [
    "/tasks/",
    "/health/",
    "/admin/jobs/",
    "/predict/%2e%2e%2f",
    "/predict/tsk_0/",
    "/predict/tsk_0/%2e%2e",
    "/tasks/%2f",
    "/tasks/%2e%2e%2fadmin%2fjobs",
    "/v1/tasks",
    "/nope",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_roberta_path):
    root = tmp_path_factory.mktemp("unknown_paths")
    with running_api(service_settings(root, tiny_roberta_path)) as api:
        yield api, api.tenant()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", UNKNOWN_PATHS)
def test_an_unknown_path_is_a_404_in_the_error_format(served, method: str, path: str) -> None:
    api, tenant = served
    response = api.client.request(
        method, path, json={"inputs": ["a"]}, headers=tenant, follow_redirects=False
    )
    assert response.status_code == 404, (response.status_code, response.headers)
    assert "location" not in response.headers
    error = response.json()["error"]
    assert error["type"] == "not_found"
    assert set(error) == {"type", "message", "details"}
