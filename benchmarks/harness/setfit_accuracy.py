"""SetFit itself on the benchmark's own split, as its users run it: library defaults.

`SetFitModel.from_pretrained(<the same MiniLM folder>)`, `Trainer(model, TrainingArguments(
seed=seed), train_dataset=<the K labelled examples>).train()`, then `predict_proba` on the whole
test set. SetFit fine-tunes the whole encoder (its contrastive phase: sentence pairs from the
labels, `CosineSimilarityLoss`), then fits a scikit-learn logistic regression on the
embeddings. Only `seed`, `report_to="none"` (no experiment trackers) and a temporary
`output_dir` (its checkpoints are thrown away) are set; every other setting is the library's,
and the record carries them (`setfit_settings`) with its version.
Needs the `peers` extra (`pip install -e '.[peers]'`).
"""

import tempfile
import time
from importlib.metadata import version

import torch

from benchmarks.harness.fewshot import Split, Task
from benchmarks.harness.scoring import score
from list_core.calibration import expected_calibration_error

# The settings the record lists (the rest of TrainingArguments is logging and output paths).
SETTINGS = (
    "batch_size",
    "num_epochs",
    "max_steps",
    "sampling_strategy",
    "num_iterations",
    "body_learning_rate",
    "head_learning_rate",
    "loss",
    "end_to_end",
    "use_amp",
    "warmup_proportion",
    "l2_weight",
    "max_length",
    "samples_per_label",
    "seed",
)


def run_setfit(backbone_path: str, task: Task, split: Split, seed: int) -> dict:
    """Train SetFit on `split.labeled` with library defaults; score it on `task.test`."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    labels = list(task.spec.labels)
    data = Dataset.from_dict(
        {
            "text": [example.text for example in split.labeled],
            "label": [labels.index(example.label) for example in split.labeled],
        }
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    model = SetFitModel.from_pretrained(backbone_path, device="cpu")
    with tempfile.TemporaryDirectory(prefix="listserve-setfit-") as output_dir:
        arguments = TrainingArguments(seed=seed, report_to="none", output_dir=output_dir)
        Trainer(model=model, args=arguments, train_dataset=data).train()
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    scored = time.perf_counter()
    texts = [example.text for example in task.test]
    probabilities = torch.as_tensor(model.predict_proba(texts, as_numpy=True))
    columns = [int(c) for c in model.model_head.classes_]
    full = torch.zeros(len(texts), len(labels), dtype=torch.float64)
    full[:, columns] = probabilities.double()
    predicted = [labels[i] for i in full.argmax(-1).tolist()]
    targets = torch.tensor([labels.index(example.label) for example in task.test])
    body = list(model.model_body.parameters())
    head = torch.cat(
        [
            torch.as_tensor(model.model_head.coef_).flatten(),
            torch.as_tensor(model.model_head.intercept_),
        ]
    )
    return {
        **score(task.test, predicted, labels),
        "ece": expected_calibration_error(full, targets),
        "k": len(split.labeled),
        "n_unlabeled": 0,
        "trainable_params": sum(p.numel() for p in body) + head.numel(),
        "adapter_bytes": None,  # no adapter: every task stores its own fine-tuned encoder
        "head_kind": type(model.model_head).__name__,
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "eval_s": round(time.perf_counter() - scored, 2),
        "hyperparameters": None,
        "setfit_version": version("setfit"),
        "sentence_transformers_version": version("sentence-transformers"),
        "setfit_settings": {key: _plain(getattr(arguments, key, None)) for key in SETTINGS},
        "history": [],
    }


def _plain(value):
    """A setting as JSON can hold it (the loss is a class)."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return getattr(value, "__name__", repr(value))
