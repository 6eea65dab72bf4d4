"""The HTTP floor micro-benchmark: a real server without a model, its records and the bound."""

from fastapi.testclient import TestClient

from benchmarks.harness.records import read_records
from benchmarks.micro.http_floor import create_floor_app, main, render


def test_the_floor_server_answers_predict_in_listserve_s_shape_and_refuses_bad_bodies() -> None:
    client = TestClient(create_floor_app())
    answer = client.post("/predict/tsk_a", json={"inputs": ["good", "bad"]})
    assert answer.status_code == 200 and answer.headers["x-request-id"]
    body = answer.json()
    assert body["task"] == "tsk_a" and body["adapter_version"] == 1
    assert [p["label"] for p in body["predictions"]] == ["positive", "positive"]
    assert client.post("/predict/tsk_a", json={"inputs": "good"}).status_code == 422


def test_each_concurrency_is_measured_against_the_server_s_cpu_and_the_bound_shown(
    tmp_path, capsys
) -> None:
    out = tmp_path / "http_floor.jsonl"
    main(["--concurrency", "1,4", "--duration", "0.5", "--warmup", "0.2", "--out", str(out)])
    records = read_records(out)
    assert [r["concurrency"] for r in records] == [1, 4]
    assert len({r["run"] for r in records}) == 1
    for record in records:
        assert record["statuses"] == {"200": record["requests"]} and record["requests"] > 0
        assert record["rows_per_server_cpu_s"] > 0 and record["server_cpu_s"] > 0
        assert record["commit"] and "--concurrency 1,4" in record["command"]
    ceiling = {"kind": "ceiling", "rows_per_cpu_s": 300.0, "run": "peers-x"}
    fixed = [{**record, "rows_per_server_cpu_s": 2700.0} for record in records]
    section = render(fixed, [ceiling])
    assert "2700 / (2700 + 300) = **0.90**" in section
    assert "| 4 | " in section and "| 1 | " in section
    assert "`peers-x`" in section
    assert "in-process ceiling of" not in render(records, [])  # no ceiling, no bound
    assert "requests / server CPU-s" in capsys.readouterr().out
