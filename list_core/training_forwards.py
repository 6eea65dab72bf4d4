"""Every forward a training job runs, with the speed-ups that leave what it computes unchanged
(docs/notes/training-speed.md has what each one saved):

- `precision`: the frozen Linear layers in bf16 on a CPU with bf16 hardware
  (`list_core.training_precision`), fp32 elsewhere;
- `scripted_teacher`: the teacher's pseudo-labels through the scripted serving forward (GIL
  released once, no work on padding), once per pool row and session
  (`list_core.encoded_pool.TeacherLabels`); evaluation reports on the `trains` backbone;
- `fused_reweighting`: under bf16, meta re-weighting's directional derivatives by forward-mode
  AD in the student's own forward (`list_core.reweighting.losses_and_alignment`): a finite
  difference cannot see its 1e-3 step through bf16 rounding, and this needs no second forward;
- `length_buckets`: forwards with a gradient split into runs of similar length
  (`list_core.length_buckets`).

Where a speed-up does not apply (a tuner the scripted forward does not compute, a tuner
outside `FORWARD_AD_TUNERS`, hidden dropout under meta re-weighting) that computation takes
today's path: the eager forward, and the fp32 finite difference on the backbone itself.
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch.func import functional_call
from torch.nn import functional as F

from list_core.backbone import Backbone
from list_core.batching import TensorBatch, collate
from list_core.encoded_pool import TeacherLabels
from list_core.length_buckets import bucketed
from list_core.prompts import EncodedRow
from list_core.reweighting import gradient_alignment, losses_and_alignment
from list_core.task_model import TaskModel
from list_core.training_precision import (
    TrainingBackbones,
    resolve_training_precision,
    training_backbones,
)

# Tuners whose every operation has a forward-mode AD formula, so `fused_reweighting` applies
# (tests/engine/test_training_speed.py checks each against exact gradient products). Not
# `partial`: its own copies of the top layers run the fused CPU attention kernel, which has
# none.
FORWARD_AD_TUNERS = (
    "adapter",
    "houlsby",
    "lora",
    "bitfit",
    "prefix",
    "prompt_tuning",
    "p_tuning",
    "linear",
    "mlp",
    "side",
)


@dataclass(frozen=True)
class TrainingSpeedups:
    """Which speed-ups a training job uses; the default is all of them."""

    precision: str = "auto"
    scripted_teacher: bool = True
    fused_reweighting: bool = True
    length_buckets: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


# Today's path before these speed-ups, for paired measurements (`benchmarks.fast_budget`).
NO_SPEEDUPS = TrainingSpeedups("fp32", False, False, False)


def kl_per_example(target_probs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(p_teacher || p_student) for each row."""
    log_student = F.log_softmax(logits, dim=-1)
    log_target = torch.log(target_probs.clamp(min=1e-12))
    return (target_probs * (log_target - log_student)).sum(-1)


class TrainingForwards:
    """One job's forwards on the backbones its speed-ups chose."""

    def __init__(self, backbone: Backbone, speedups: TrainingSpeedups) -> None:
        self.backbone = backbone
        self.speedups = speedups
        precision = resolve_training_precision(speedups.precision, backbone.device)
        self.backbones: TrainingBackbones = training_backbones(
            backbone, precision, speedups.scripted_teacher
        )

    @property
    def precision(self) -> str:
        return self.backbones.precision

    def logits(
        self, model: TaskModel, rows: Sequence[EncodedRow], backbone: Backbone | None = None
    ) -> torch.Tensor:
        """`model`'s logits for `rows` on `backbone` (default: the `trains` one)."""
        chosen = self.backbones.trains if backbone is None else backbone
        return self._forward(lambda batch: model.logits(chosen, batch), model, rows)

    def _forward(
        self,
        forward: Callable[[TensorBatch], torch.Tensor],
        model: TaskModel,
        rows: Sequence[EncodedRow],
    ) -> torch.Tensor:
        device = self.backbone.device
        if self.speedups.length_buckets:
            return bucketed(forward, rows, model.pad_id, device)
        return forward(collate(rows, model.pad_id, device))

    def teacher_labels(
        self, teacher: TaskModel
    ) -> Callable[[Sequence[int], Sequence[EncodedRow]], torch.Tensor]:
        """A session teacher's label probabilities for pool rows (indices, rows)."""
        if self.speedups.scripted_teacher:
            return TeacherLabels(lambda rows: self.probabilities(teacher, rows))

        def per_batch(indices: Sequence[int], rows: Sequence[EncodedRow]) -> torch.Tensor:
            with torch.no_grad():
                return F.softmax(self.logits(teacher, rows), dim=-1)

        return per_batch

    @torch.no_grad()
    def probabilities(self, model: TaskModel, rows: Sequence[EncodedRow]) -> torch.Tensor:
        """`model`'s label probabilities for `rows` without a gradient: through the scripted
        forward of the `frozen` backbone where it computes the model's tuner, else eager."""
        frozen = self.backbones.frozen
        batch = collate(rows, model.pad_id, self.backbone.device)
        scripted = frozen.scripted
        packed = None if scripted is None else scripted.pack([model.adapters], batch.lengths)
        if scripted is None or packed is None:
            return F.softmax(self.logits(model, rows), dim=-1)
        mask_index = [row.mask_index for row in rows]
        mask_only = model.head.reads_mask_only and min(mask_index) >= 0
        hidden = scripted(
            batch.input_ids,
            batch.attention_mask,
            packed,
            batch.lengths,
            outputs=mask_index if mask_only else None,
        )
        if model.adapters.transforms_hidden:
            hidden = model.adapters.transform_hidden(
                frozen, hidden, batch.input_ids, batch.attention_mask
            )
        return F.softmax(model.head(hidden, batch.attention_mask, batch.mask_index), dim=-1)

    def fuses(self, student: TaskModel) -> bool:
        """Whether the student's re-weighting steps take the fused path."""
        return (
            self.speedups.fused_reweighting
            and self.precision == "bf16"
            and student.hidden_dropout == 0
            and student.tuner in FORWARD_AD_TUNERS
        )

    def reweighted(
        self,
        student: TaskModel,
        rows: Sequence[EncodedRow],
        soft: torch.Tensor,
        labeled_rows: Sequence[EncodedRow],
        targets: torch.Tensor,
        epsilon: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A re-weighting step's (student logits, per-example KL to train on,
        g_lab . grad KL_i), with g_lab the gradient of the loss on `labeled_rows`."""
        if not self.fuses(student):
            return self._by_difference(student, rows, soft, labeled_rows, targets, epsilon)
        labeled_logits = self.logits(student, labeled_rows)
        labeled_loss = F.cross_entropy(labeled_logits, targets.to(labeled_logits.device))
        return self._fused(student, rows, soft, labeled_loss)

    def _fused(
        self,
        student: TaskModel,
        rows: Sequence[EncodedRow],
        soft: torch.Tensor,
        labeled_loss: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The KL and its directional derivatives from one forward (forward-mode AD)."""
        logits_at: dict[str, torch.Tensor] = {}
        trains = self.backbones.trains

        def losses_at(params: dict[str, torch.Tensor]) -> torch.Tensor:
            logits = self._forward(
                lambda batch: functional_call(student, params, (trains, batch), strict=False),
                student,
                rows,
            )
            logits_at["logits"] = logits
            return kl_per_example(soft, logits)

        losses, alignment = losses_and_alignment(student, labeled_loss, losses_at)
        return logits_at["logits"], losses, alignment

    def _by_difference(
        self,
        student: TaskModel,
        rows: Sequence[EncodedRow],
        soft: torch.Tensor,
        labeled_rows: Sequence[EncodedRow],
        targets: torch.Tensor,
        epsilon: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The step as before the speed-ups: every forward in fp32 on the backbone itself,
        the alignment a forward finite difference. With dropout on, the difference would
        compare two dropout masks, so it is taken without dropout."""
        backbone = self.backbone
        logits = self.logits(student, rows, backbone)
        losses = kl_per_example(soft, logits)

        def losses_at(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return kl_per_example(
                soft,
                self._forward(
                    lambda batch: functional_call(student, params, (backbone, batch), strict=False),
                    student,
                    rows,
                ),
            )

        was_training = student.training
        baseline = losses
        if student.hidden_dropout > 0:
            student.eval()
            with torch.no_grad():
                baseline = kl_per_example(soft, self.logits(student, rows, backbone))
        try:
            labeled_logits = self.logits(student, labeled_rows, backbone)
            labeled_loss = F.cross_entropy(labeled_logits, targets.to(soft.device))
            alignment = gradient_alignment(student, labeled_loss, baseline, losses_at, epsilon)
        finally:
            student.train(was_training)
        return logits, losses, alignment
