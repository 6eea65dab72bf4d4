"""`listserve predict --server URL --task ID` scores a JSONL file through a running server,
chunked by the server's own limit, keeping each line's gold label beside the prediction."""

import json
from pathlib import Path

import httpx
import pytest

from service.cli import main
from service.metrics import HTTP_REQUESTS
from tests.live_server import live_server
from tests.service.conftest import ADMIN_TOKEN, service_settings, task_body, wait_until


@pytest.fixture
def server_task(tmp_path: Path, tiny_roberta_path: Path):
    settings = service_settings(tmp_path, tiny_roberta_path, max_predict_inputs=3)
    with live_server(settings) as base, httpx.Client(base_url=base, timeout=30) as client:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        key = client.post("/admin/tenants", json={"name": "cli"}, headers=admin).json()["api_key"]
        tenant = {"Authorization": f"Bearer {key}"}
        task = client.post("/tasks", json=task_body(), headers=tenant).json()

        def ready() -> bool:
            return client.get(f"/tasks/{task['id']}", headers=tenant).json()["status"] == "ready"

        wait_until(ready, 60, "the task to train")
        yield base, task["id"], key


def _predict_requests() -> float:
    return HTTP_REQUESTS.labels("POST", "/predict/{task_id}", "200")._value.get()


def test_a_file_larger_than_one_request_is_scored_in_chunks(
    server_task, tmp_path: Path, monkeypatch, capsys
) -> None:
    base, task_id, key = server_task
    lines = [
        {"id": i, "text": text, "label": label}
        for i, (text, label) in enumerate(
            [("a great fun movie", "positive"), ("a dull boring film", "negative")] * 3
            + [("superb acting", "positive")]
        )
    ]
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setenv("LISTSERVE_API_KEY", key)
    before = _predict_requests()
    argv = ["predict", "--server", base, "--task", task_id, "--input", str(source)]
    assert main([*argv, "--output", str(output)]) == 0
    assert _predict_requests() - before == 3  # 7 lines, at most 3 per request
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(w["id"], w["text"], w["label"]) for w in written] == [
        (line["id"], line["text"], line["label"]) for line in lines
    ]
    assert all(w["prediction"] in ("positive", "negative") for w in written)
    assert all(w["score"] == w["scores"][w["prediction"]] for w in written)
    assert capsys.readouterr().out.startswith("examples=7 accuracy=")


def test_a_text_over_the_servers_limit_is_refused_naming_its_line(
    server_task, tmp_path: Path
) -> None:
    base, task_id, key = server_task
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n' + json.dumps({"text": "x" * 2001}) + "\n")
    argv = ["predict", "--server", base, "--task", task_id, "--api-key", key]
    with pytest.raises(SystemExit, match=r"in\.jsonl: input 2: text has 2001 characters"):
        main([*argv, "--input", str(source)])
    source.write_text('{"text": "fine"}\n')
    argv[-1] = "lsk_wrong"
    with pytest.raises(SystemExit, match="HTTP 401 unauthorized"):
        main([*argv, "--input", str(source)])
