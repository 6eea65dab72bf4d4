"""SetFit as users serve it: one SetFit model per task, trained here, then a FastAPI process.

`train_models` trains `count` SetFit models on MiniLM, task i on the sst-2 few-shot draw of seed
i + 1 (K = 30, `fewshot.draw_split`), each with a short contrastive fine-tune of its own body
(`max_steps`, so every task holds distinct body weights, as trained SetFit models do) and the
logistic-regression head SetFit fits on the embeddings. They are saved once under the work
folder with `save_pretrained` and reused.

`python -m benchmarks.harness.setfit_server` serves them: the pattern of SetFit's docs and of
the usual FastAPI wrapper, every model loaded with `SetFitModel.from_pretrained` at start-up
and `model.predict(texts)` per request in a plain (threadpool) route, no batching across
requests. The speed and memory of SetFit are those of its sentence-transformers body; the
accuracy of these quickly trained models is not what is measured.
"""

import json
import tempfile
from pathlib import Path

from benchmarks.harness.fewshot import DATA_DIR, draw_split, load_task

MANIFEST = "setfit-models.json"


def train_models(
    backbone_path: str,
    out_dir: Path,
    count: int,
    max_steps: int = 4,
    k: int = 30,
    task: str = "sst-2",
    data_dir: Path = DATA_DIR,
) -> list[Path]:
    """`count` trained SetFit model folders under `out_dir` (those already there are kept)."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    few_shot = load_task(task, data_dir)
    labels = list(few_shot.spec.labels)
    folders = []
    for index in range(count):
        folder = out_dir / f"task-{index}"
        folders.append(folder)
        if (folder / "model_head.pkl").is_file():
            continue
        split = draw_split(few_shot.train, labels, k, seed=index + 1)
        data = Dataset.from_dict(
            {
                "text": [example.text for example in split.labeled],
                "label": [example.label for example in split.labeled],
            }
        )
        model = SetFitModel.from_pretrained(backbone_path, device="cpu", labels=labels)
        with tempfile.TemporaryDirectory(prefix="listserve-setfit-peer-") as checkpoints:
            arguments = TrainingArguments(
                batch_size=8,
                num_epochs=1,
                max_steps=max_steps,
                seed=index + 1,
                report_to="none",
                output_dir=checkpoints,  # not ./checkpoints of the caller's folder
            )
            Trainer(model=model, args=arguments, train_dataset=data).train()
        model.save_pretrained(str(folder))
    (out_dir / MANIFEST).write_text(
        json.dumps({"tasks": [folder.name for folder in folders]}), encoding="utf-8"
    )
    return folders


def model_folders(models_dir: Path, count: int) -> list[Path]:
    """The first `count` trained model folders of `models_dir`."""
    names = json.loads((models_dir / MANIFEST).read_text(encoding="utf-8"))["tasks"]
    if len(names) < count:
        raise ValueError(f"{models_dir} holds {len(names)} SetFit models, not {count}")
    return [models_dir / name for name in names[:count]]
