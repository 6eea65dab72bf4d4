"""The peers benchmark: its targets and table from records, its load generator against a real
server, the SetFit peer's server, the in-process ceiling, and Infinity's environment keeping
listserve's torch. Infinity itself is not installed by the tests (its environment takes minutes
to build); SetFit tests need the `peers` extra and skip, saying so, without it."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import peers
from benchmarks.harness import peer_targets
from benchmarks.harness.infinity_env import link_torch, torch_constraint
from benchmarks.harness.peer_load import Target, drive
from benchmarks.harness.peer_servers import OFFLINE_ENV, http_server
from benchmarks.harness.records import REPO_ROOT
from benchmarks.harness.server import free_port

NO_SETFIT = "the peers extra is not installed (pip install -e '.[peers]')"


def point(peer: str, tasks: int | None, concurrency: int, rows: float, rss: float, **extra):
    return {
        "benchmark": "peers", "kind": "point", "run": "r1", "peer": peer, "tasks": tasks,
        "concurrency": concurrency, "rows_per_s": rows, "p50_ms": 10.0, "p99_ms": 20.0,
        "rss_median_mb": rss, "commit": "abcdef1234", "cpus": 2, "cpu_model": "CPU", "gpu": None,
        "warmup_s": 2.0, "duration_s": 5.0, "command": "python -m benchmarks.peers run",
        "load_avg_start": 1.5, "load_avg_end": 2.5, "date": "2026-12-07T00:00:00+00:00", **extra,
    }  # fmt: skip


def run_records(infinity_onnx: float = 300.0, ceiling: float = 420.0) -> list[dict]:
    records = []
    for tasks, rss in ((1, 700.0), (32, 736.0), (1024, 960.0)):
        for concurrency, rows in ((1, 100.0), (64, 400.0 if tasks < 1024 else 250.0)):
            records.append(
                point("listserve", tasks, concurrency, rows, rss, prewarmed=tasks <= 32,
                      rows_per_server_cpu_s=rows / 2)
            )  # fmt: skip
    records += [
        point("infinity-torch", None, 64, 200.0, 650.0),
        point("infinity-onnx", None, 64, infinity_onnx, 1900.0, rows_per_server_cpu_s=100.0),
        point("setfit", 1, 64, 50.0, 600.0),
        point("setfit", 16, 64, 45.0, 2000.0),
    ]
    ceiling_record = {"benchmark": "peers", "kind": "ceiling", "run": "r1",
                      "peer": "listserve-in-process", "batch_rows": 32, "rows_per_s": ceiling,
                      "rows_per_cpu_s": 150.0, "model_threads": 2, "torch_threads": 1,
                      "precision": "bf16", "date": "2026-12-07T00:00:00+00:00"}  # fmt: skip
    return [*records, ceiling_record]


def test_targets_are_judged_at_the_largest_resident_task_count_against_the_best_engine():
    met = {v.name: v for v in peer_targets.verdicts(run_records())}
    throughput, memory, efficiency = met.values()
    assert throughput.met is True  # 400 over 32 tasks vs infinity-onnx 300 = 1.33
    assert "vs infinity-onnx 300.0 = 1.33x" in throughput.text
    assert "1024 tasks: 0.83x" in throughput.text
    assert (
        "per server CPU-second, which the machine's other load does not move: 200.0 vs "
        "100.0 = 2.00x" in throughput.text
    )
    # listserve (736 - 700) / 31 = 1.161 MB/task; SetFit (2000 - 600) / 15 = 93.3 MB/task
    assert memory.met is True and "listserve 1.161 MB/task" in memory.text
    assert "SetFit 93.333 MB/task" in memory.text
    assert efficiency.met is True  # 400 / 420 = 0.95
    assert "200.0 served vs 150.0 in process = 1.33" in efficiency.text

    missed = peer_targets.verdicts(run_records(infinity_onnx=350.0, ceiling=500.0))
    assert [v.met for v in missed] == [False, True, False]
    assert "= 1.14x" in missed[0].text and "= 0.80" in missed[2].text


def test_a_peer_not_measured_leaves_its_target_unjudged():
    without_setfit = [r for r in run_records() if r["peer"] != "setfit"]
    without_infinity = [r for r in run_records() if not r["peer"].startswith("infinity")]
    assert peer_targets.memory(without_setfit).met is None
    assert peer_targets.throughput(without_infinity).met is None
    assert peer_targets.throughput(without_setfit).met is True


def test_the_section_shows_the_newest_run_its_skips_and_its_targets():
    older = [{**r, "run": "r0", "rows_per_s": 1.0} for r in run_records() if r["kind"] == "point"]
    skipped = {"benchmark": "peers", "kind": "skipped", "run": "r1", "peer": "infinity-onnx",
               "reason": "optimum did not install"}  # fmt: skip
    text = peers.render([*older, *run_records(), skipped])
    assert "run `r1`" in text and "| listserve | 32 | 64 | 400.0 | 10.0 / 20.0 | 736.0 |" in text
    assert "| infinity-onnx | - | 64 | 300.0 |" in text
    assert "`infinity-onnx` not measured: optimum did not install" in text
    assert "load average 1.50-2.50" in text
    assert "32 rows 420.0/s (150.0/CPU-s)" in text and "1 torch threads" in text
    assert text.count(": met (") == 3
    assert "rows_per_s': 1.0" not in text and "| 1.0 |" not in text


def test_a_target_sends_each_request_to_one_of_its_tasks_with_its_body(tmp_path):
    target = Target("http://127.0.0.1:1", "/embeddings", texts_key="input", extra={"model": "m"})
    assert target.body(["a b"]) == b'{"model": "m", "input": ["a b"]}'
    assert Target.load(target.save(tmp_path / "t.json")) == target


def test_infinity_gets_listserves_torch_by_link_not_by_download(tmp_path):
    assert torch_constraint("2.13.0+cpu") == "torch==2.13.0"
    assert torch_constraint("2.13.0") == "torch==2.13.0"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    link_torch(venv)
    # What pip there sees installed, and where `import torch` would load it from (torch's
    # own dependencies come from pip in the real environment, not from the link).
    probe = (
        "import importlib.metadata as m, importlib.util as u; "
        "print(m.version('torch')); print(u.find_spec('torch').origin)"
    )
    version, found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout.split()
    import torch

    assert version == torch.__version__
    assert Path(found).resolve() == Path(torch.__file__).resolve()


@pytest.fixture(scope="module")
def setfit_models(tiny_bert_path, tiny_data, tmp_path_factory) -> Path:
    pytest.importorskip("setfit", reason=NO_SETFIT)
    from benchmarks.harness.setfit_peer import train_models

    folder = tmp_path_factory.mktemp("setfit-models")
    train_models(str(tiny_bert_path), folder, 2, max_steps=1, k=4, data_dir=tiny_data)
    return folder


def test_the_setfit_server_predicts_with_each_tasks_own_model(setfit_models):
    from fastapi.testclient import TestClient

    from benchmarks.harness.setfit_server import create_app, load_models

    models = load_models(setfit_models, 2)
    assert set(models) == {"task-0", "task-1"}
    assert models["task-0"] is not models["task-1"]
    client = TestClient(create_app(models))
    answer = client.post("/predict/task-1", json={"inputs": ["the film was great", "dull"]})
    assert answer.status_code == 200
    assert set(answer.json()["predictions"]) <= {"negative", "positive"}
    assert len(answer.json()["predictions"]) == 2
    assert client.post("/predict/task-9", json={"inputs": ["x"]}).status_code == 404
    assert client.post("/predict/task-0", json={"inputs": []}).status_code == 422
    with pytest.raises(ValueError, match="holds 2 SetFit models, not 3"):
        load_models(setfit_models, 3)


@pytest.mark.slow
def test_the_load_generator_drives_a_real_server_and_counts_what_it_answered(
    setfit_models, tmp_path
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "benchmarks.harness.setfit_server", "--models",
               str(setfit_models), "--tasks", "2", "--port", str(port)]  # fmt: skip
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(REPO_ROOT)}
    with http_server(command, env, tmp_path / "log", f"{url}/health", cwd=REPO_ROOT) as pid:
        served = Target(url, "/predict/{task}", ["task-0", "task-1"])
        result = asyncio.run(drive(served, 2, 0.2, 0.8, 10_000, server_pid=pid))
        unknown = Target(url, "/predict/{task}", ["task-7"])
        refused = asyncio.run(drive(unknown, 1, 0.0, 0.3, 5))
    assert result["rows_ok"] == result["requests"] > 0
    assert result["statuses"] == {"200": result["requests"]}
    assert result["rows_per_s"] == pytest.approx(result["rows_ok"] / result["seconds"], 0.01)
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["server_cpu_s"] > 0
    assert refused["rows_ok"] == 0 and refused["statuses"] == {"404": refused["requests"]}
    assert refused["requests"] <= 5 and refused["rows_per_s"] == 0


def test_the_ceiling_runs_the_served_forward_at_each_batch_size(tiny_roberta_path):
    from benchmarks.harness.forward_ceiling import measure_ceiling

    results = measure_ceiling(str(tiny_roberta_path), [1, 4], distinct=3, seconds=0.2)
    assert [r["batch_rows"] for r in results] == [1, 4]
    assert [r["distinct_adapters"] for r in results] == [1, 3]
    for result in results:
        assert result["rows_per_s"] > 0 and result["seconds"] >= 0.2
        assert result["model_threads"] >= 1 and result["device"] == "cpu"
        assert result["cpu_s"] > 0 and result["rows_per_cpu_s"] > 0
