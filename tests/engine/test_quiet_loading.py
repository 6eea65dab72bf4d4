"""Loading a backbone says one line about its head kind and why, and nothing else: probing for
an MLM head must not print transformers' load report for a checkpoint saved without one."""

import logging
import shutil
from pathlib import Path

import pytest

from list_core import backbone as backbone_module
from list_core.backbone import load_backbone
from tests.tiny_models import build_tiny_bert

NOISE = (
    "corrupted",
    "LOAD REPORT",
    "MISSING",
    "UNEXPECTED",
    "Loading weights",
    "newly initialized",
)


def _load_fresh(path: Path, caplog, capfd) -> tuple[str, list[str]]:
    """Load with nothing cached; returns what reached stderr and the engine's log lines."""
    backbone_module._cache.pop((str(path), "cpu"), None)
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG):
        backbone = load_backbone(str(path), "cpu")
    noise = capfd.readouterr().err + "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("list_core")
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "list_core.backbone"]
    return backbone.prompt_head_kind, [noise, *lines]


@pytest.mark.parametrize("pooler", [True, False])
def test_an_encoder_without_mlm_head_loads_quietly(tmp_path, caplog, capfd, pooler) -> None:
    path = build_tiny_bert(tmp_path / "minilm-like", mlm_head=False, pooler=pooler)
    kind, (noise, *lines) = _load_fresh(path, caplog, capfd)
    assert kind == "similarity"
    assert not [word for word in NOISE if word in noise], noise
    assert len(lines) == 1 and "head kind similarity" in lines[0]
    assert "no MLM head weights" in lines[0]


def test_an_encoder_with_mlm_head_says_so_in_one_line(
    tmp_path, tiny_roberta_path, caplog, capfd
) -> None:
    path = shutil.copytree(tiny_roberta_path, tmp_path / "roberta")
    kind, (noise, *lines) = _load_fresh(path, caplog, capfd)
    assert kind == "mlm"
    assert not [word for word in NOISE if word in noise], noise
    assert lines == [f"backbone {path}: head kind mlm (its checkpoint has MLM head weights)"]


@pytest.mark.slow
def test_the_bundled_minilm_loads_quietly(minilm_path, caplog, capfd) -> None:
    kind, (noise, *lines) = _load_fresh(minilm_path, caplog, capfd)
    assert kind == "similarity"
    assert not [word for word in NOISE if word in noise], noise
    assert len(lines) == 1 and "head kind similarity" in lines[0]
