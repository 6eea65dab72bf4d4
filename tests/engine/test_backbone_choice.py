"""A backbone that cannot be had is one clear line naming the setting and the fix, in seconds:
offline, unreachable, unknown on the Hub, or a folder that is not there. The command line gets
the same `auto` choice as the server, as its default."""

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from list_core.backbone_choice import BackboneUnavailableError, choose_backbone, load_chosen
from service.cli import build_parser
from tests.live_server import free_port

FIX = "set --backbone to auto"


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", ""))


def _refused(setting: str) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(BackboneUnavailableError) as caught:
        load_chosen(choose_backbone(setting, "--backbone"), "cpu", "--backbone")
    return str(caught.value), time.monotonic() - started


def test_a_hub_id_offline_is_refused_at_once(empty_hub_cache, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message, seconds = _refused("roberta-base")
    assert seconds < 2
    assert message.startswith("--backbone=roberta-base: not in the local Hugging Face cache")
    assert "HF_HUB_OFFLINE is set" in message and FIX in message and "\n" not in message


def test_a_hub_id_with_no_network_is_refused_in_seconds(empty_hub_cache, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    message, seconds = _refused("roberta-base")
    assert seconds < 5
    assert "the Hugging Face Hub is unreachable" in message and FIX in message


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", "RepositoryNotFound")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub_that_knows_nothing(monkeypatch) -> Iterator[None]:
    import huggingface_hub.constants as constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )
    yield
    server.shutdown()


def test_an_unknown_hub_id_is_one_line_naming_the_setting(
    empty_hub_cache, hub_that_knows_nothing
) -> None:
    message, seconds = _refused("nobody/no-such-model")
    assert seconds < 10
    assert message.startswith("--backbone=nobody/no-such-model: could not load")
    assert FIX in message and "\n" not in message


def test_a_missing_folder_is_refused(tmp_path) -> None:
    message, _ = _refused(str(tmp_path / "not-here"))
    assert "no such folder" in message and FIX in message


def test_the_command_line_defaults_to_the_servers_auto_choice(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("LISTSERVE_BACKBONE", raising=False)
    argv = ["train", "--examples", "x.jsonl", "--out", str(tmp_path)]
    assert build_parser().parse_args(argv).backbone == "auto"
    monkeypatch.setenv("LISTSERVE_BACKBONE", "/models/mine")
    assert build_parser().parse_args(argv).backbone == "/models/mine"


@pytest.mark.slow
def test_listserve_train_offline_prints_one_line_and_no_traceback(tmp_path) -> None:
    """The README's first CLI step on an offline machine, as a newcomer runs it."""
    examples = tmp_path / "train.jsonl"
    examples.write_text('{"text": "fine", "label": "a"}\n{"text": "bad", "label": "b"}\n')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "train",
            "--backbone",
            "roberta-base",
            "--examples",
            str(examples),
            "--out",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 60  # interpreter and torch import included
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[-1].startswith("listserve train: --backbone=roberta-base: not in the local")
    assert FIX in lines[-1]
