"""SetFit's recipe on a frozen shared backbone: contrastive tuning of the task's tuner, then
its head (method `contrastive`, and `list`'s teacher with `teacher: "contrastive"`).

SetFit (Tunstall et al. 2022; setfit 1.2's `sampler.ContrastiveDataset` and `Trainer`) draws
sentence pairs from the labelled set — a pair is positive when both have the same label —
and trains the sentence embedding so that the cosine similarity of a pair's mean-pooled
embeddings regresses onto 1 (positive) or 0 (negative): sentence-transformers'
`CosineSimilarityLoss`, an MSE on the cosine. Then it fits a classifier on the embeddings with
the body frozen. Here only the task's tuner trains in the first phase (the backbone is shared
and frozen), and the head is the prompt similarity head (`list_core.heads.similarity`: scaled
cosine to one embedding per label, started from the label sentences), fit on the tuned
embeddings with the tuner frozen, so the task serves in mixed batches like any other.

Where this follows SetFit and where not:
- pairs: SetFit's `num_iterations` sampling, `iterations x n` positive and as many negative
  pairs cycled from the shuffled combinations of the labelled examples (its
  `sampling_strategy` default, oversampling, gives a count that depends on the label mix, and
  fewer steps than a tuner on a frozen encoder needs); self-pairs are left out (identical
  inputs through a frozen encoder have cosine 1 and no gradient);
- optimiser: AdamW with the linear decay every listserve phase uses, at `contrastive_lr`
  (SetFit's 2e-5 with 10 % warm-up is for fine-tuning every encoder weight);
- head: the similarity head by cross-entropy on the labels (`head_steps` full-batch steps at
  `head_lr`, SetFit's `head_learning_rate` for its differentiable head), where SetFit's default
  is scikit-learn's logistic regression.
"""

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch
from torch.nn import functional as F

from list_core.backbone import Backbone
from list_core.batching import collate
from list_core.heads.base import mean_pool
from list_core.hyperparams import Hyperparameters
from list_core.prompts import EncodedRow
from list_core.task_model import TaskModel

HEAD_CHUNK = 64  # rows whose hidden states are kept together while the head trains


class TrainingLoop(Protocol):
    """What the recipe uses of a training run (`list_core.training._Run`)."""

    backbone: Backbone
    hp: Hyperparameters
    generator: torch.Generator
    targets: torch.Tensor

    def _optimizer(self, model: TaskModel, lr: float, steps: int): ...

    def _step(self, params, optimizer, schedule, loss: torch.Tensor) -> None: ...

    def _advance(self, session, phase, step, steps, losses, agreement=None) -> None: ...

    def _check_cancel(self) -> None: ...


def sentence_pairs(
    targets: Sequence[int], iterations: int, generator: torch.Generator
) -> list[tuple[int, int, float]]:
    """`(i, j, 1.0 | 0.0)` pairs of labelled examples, positives and negatives alternating:
    `iterations x n` of each, cycled from the shuffled distinct pairs of that kind (only one
    kind when the labels allow no other, e.g. one example per label)."""
    n = len(targets)
    combos = [(i, j) for i in range(n) for j in range(i + 1, n)]
    order = torch.randperm(len(combos), generator=generator).tolist()
    positive = [(*combos[k], 1.0) for k in order if targets[combos[k][0]] == targets[combos[k][1]]]
    negative = [(*combos[k], 0.0) for k in order if targets[combos[k][0]] != targets[combos[k][1]]]
    kinds = [kind for kind in (positive, negative) if kind]
    count = iterations * n
    pairs: list[tuple[int, int, float]] = []
    for index in range(count):
        pairs += [kind[index % len(kind)] for kind in kinds]
    return pairs[: 2 * count]


def fit_contrastive(run: TrainingLoop, model: TaskModel, rows: list[EncodedRow]) -> float:
    """Both phases on the labelled `rows`; returns the head's last cross-entropy."""
    pair_loss = _fit_embedding(run, model, rows)
    head_loss = fit_head(run, model, rows)
    return head_loss if not math.isnan(head_loss) else pair_loss


def _fit_embedding(run: TrainingLoop, model: TaskModel, rows: list[EncodedRow]) -> float:
    hp = run.hp
    steps = hp.contrastive_steps(len(rows))
    pairs = sentence_pairs(run.targets.tolist(), hp.contrastive_iterations, run.generator)
    params, optimizer, schedule = run._optimizer(model, hp.contrastive_lr, steps)
    model.train()
    running = math.nan
    batches = _pair_batches(pairs, hp.contrastive_batch, steps, run.generator)
    for step, batch_pairs in enumerate(batches, 1):
        run._check_cancel()
        loss = pair_loss(run.backbone, model, rows, batch_pairs)
        run._step(params, optimizer, schedule, loss)
        running = loss.item() if math.isnan(running) else 0.9 * running + 0.1 * loss.item()
        run._advance(0, "contrastive", step, steps, {"pair_loss": running})
    return running


def pair_loss(
    backbone: Backbone,
    model: TaskModel,
    rows: Sequence[EncodedRow],
    pairs: Sequence[tuple[int, int, float]],
) -> torch.Tensor:
    """`CosineSimilarityLoss`: MSE between the cosine of each pair's pooled embeddings (what
    the similarity head reads) and its 1/0 label; each sentence is encoded once per batch."""
    members = sorted({index for i, j, _ in pairs for index in (i, j)})
    position = {index: place for place, index in enumerate(members)}
    batch = collate([rows[i] for i in members], model.pad_id, backbone.device)
    pooled = mean_pool(model.hidden_states(backbone, batch), batch.attention_mask)
    pooled = F.normalize(pooled, dim=-1)
    left = pooled[[position[i] for i, _, _ in pairs]]
    right = pooled[[position[j] for _, j, _ in pairs]]
    labels = torch.tensor([label for _, _, label in pairs], device=pooled.device)
    return F.mse_loss((left * right).sum(-1), labels.to(pooled.dtype))


def fit_head(run: TrainingLoop, model: TaskModel, rows: list[EncodedRow]) -> float:
    """The head alone by full-batch cross-entropy over the tuned encoder's hidden states,
    computed once (the tuner is frozen in this phase, as SetFit freezes its body)."""
    hp = run.hp
    if hp.head_steps == 0:
        return math.nan
    model.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(rows), HEAD_CHUNK):
            batch = collate(rows[start : start + HEAD_CHUNK], model.pad_id, run.backbone.device)
            chunks.append((model.hidden_states(run.backbone, batch), batch, start))
    params = [p for p in model.head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.head_lr, weight_decay=hp.weight_decay)
    loss_value = math.nan
    for step in range(1, hp.head_steps + 1):
        run._check_cancel()
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for hidden, batch, start in chunks:
            logits = model.head(hidden, batch.attention_mask, batch.mask_index)
            targets = run.targets[start : start + len(logits)].to(logits.device)
            loss = F.cross_entropy(logits, targets, reduction="sum") / len(rows)
            loss.backward()
            total += loss.item()
        optimizer.step()
        loss_value = total
        run._advance(0, "head", step, hp.head_steps, {"labeled_loss": loss_value})
    return loss_value


def _pair_batches(
    pairs: list[tuple[int, int, float]], size: int, steps: int, generator: torch.Generator
) -> Iterator[list[tuple[int, int, float]]]:
    """`steps` batches of `size` pairs over reshuffled epochs of `pairs`."""
    order: list[int] = []
    for _ in range(steps):
        while len(order) < size:
            order += torch.randperm(len(pairs), generator=generator).tolist()
        batch, order = order[:size], order[size:]
        yield [pairs[i] for i in batch]
