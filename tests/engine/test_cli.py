import json

import pytest

from service.cli import main
from tests.engine.helpers import EXAMPLES, UNLABELED


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_train_then_predict_from_files(tiny_roberta_path, tmp_path, capsys):
    examples = _write(
        tmp_path / "train.jsonl", [{"text": e.text, "label": e.label} for e in EXAMPLES]
    )
    unlabeled = _write(tmp_path / "unlabeled.jsonl", [{"text": t} for t in UNLABELED])
    out = tmp_path / "adapter"
    code = main(
        [
            "train",
            "--backbone",
            str(tiny_roberta_path),
            "--examples",
            examples,
            "--unlabeled",
            unlabeled,
            "--label-words",
            "negative=terrible,positive=great",
            "--budget",
            "fast",
            "--set",
            "teacher_steps=3",
            "--set",
            "unlabeled_steps=2",
            "--set",
            "labeled_steps=1",
            "--set",
            "sessions=1",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert (out / "adapter.safetensors").is_file()
    trained = capsys.readouterr()
    assert "saved list adapter" in trained.out
    bar = trained.err.replace("\r", "\n")
    assert "label words: negative=terrible, positive=great" in bar
    assert " , " not in bar and "| ," not in bar  # tqdm's postfix separator is gone
    assert "elapsed, about" in bar and "left | session 1/1" in bar

    predictions = tmp_path / "predictions.jsonl"
    code = main(
        [
            "predict",
            "--adapter",
            str(out),
            "--input",
            examples,
            "--output",
            str(predictions),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "examples=6 accuracy=" in printed and "macro_f1=" in printed
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [(line["text"], line["label"]) for line in lines] == [
        (e.text, e.label) for e in EXAMPLES
    ]
    assert all(line["prediction"] in ("negative", "positive") for line in lines)
    assert all(line["score"] == line["scores"][line["prediction"]] for line in lines)
    assert all(abs(sum(line["scores"].values()) - 1) < 1e-5 for line in lines)


def test_train_rejects_a_bad_template(tiny_roberta_path, tmp_path):
    examples = _write(
        tmp_path / "train.jsonl", [{"text": e.text, "label": e.label} for e in EXAMPLES]
    )
    with pytest.raises(ValueError, match="exactly one"):
        main(
            [
                "train",
                "--backbone",
                str(tiny_roberta_path),
                "--examples",
                examples,
                "--template",
                "{text} no mask here",
                "--out",
                str(tmp_path / "x"),
            ]
        )


def test_bad_jsonl_names_the_line(tiny_roberta_path, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "positive"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: invalid JSON"):
        main(
            [
                "train",
                "--backbone",
                str(tiny_roberta_path),
                "--examples",
                str(bad),
                "--out",
                str(tmp_path / "x"),
            ]
        )
