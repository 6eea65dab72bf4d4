"""The training speed-ups (list_core/training_forwards.py) compute what the plain path does:
each one against the computation it replaces, and the fallbacks where one does not apply."""

import threading

import pytest
import torch
from torch.func import functional_call
from torch.nn import functional as F

from list_core.adapters import AdapterConfig
from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.data import Example
from list_core.encoded_pool import EncodedPool, TeacherLabels
from list_core.hyperparams import resolve_hyperparameters
from list_core.length_buckets import bucketed, length_runs
from list_core.prompts import EncodedRow
from list_core.reweighting import losses_and_alignment
from list_core.serving.capabilities import native_bf16
from list_core.serving.speedups import _copy_sharing
from list_core.task_model import TaskModel
from list_core.training import train_task
from list_core.training_forwards import (
    FORWARD_AD_TUNERS,
    NO_SPEEDUPS,
    TrainingForwards,
    TrainingSpeedups,
    kl_per_example,
)
from list_core.training_precision import Bf16FrozenLinear, resolve_training_precision
from list_core.tuners.registry import TUNERS, tuner_config

from .helpers import EXAMPLES, SENTIMENT, TINY_STEPS, UNLABELED

TEXTS = [*UNLABELED, "a long and winding tale of a great and lovely cast", "dull", "nice fun"]
CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(not native_bf16(CPU), reason="this CPU has no bf16 hardware")


def _model(backbone, tuner="adapter", seed=0, method="list") -> TaskModel:
    """A task model with its tuner tensors moved off their (often zero) start."""
    hp = resolve_hyperparameters(
        {"budget": "fast", "bottleneck": 8, "prefix_hidden": 16, "partial_layers": 1},
        6,
        6,
        backbone.device,
        method,
        tuner,
    )
    generator = torch.Generator().manual_seed(seed)
    model = TaskModel(backbone, SENTIMENT, method, tuner_config(tuner, hp, backbone), 32, generator)
    with torch.no_grad():
        for parameter in model.adapters.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model


def _rows(model, texts=TEXTS):
    return model.encode(list(texts), [None] * len(texts))


def _gold():
    return torch.tensor([SENTIMENT.labels.index(e.label) for e in EXAMPLES])


def test_scripted_teacher_labels_equal_the_eager_ones_in_fp32(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    forwards = TrainingForwards(backbone, TrainingSpeedups(precision="fp32"))
    model = _model(backbone).eval()
    rows = _rows(model)
    batch = collate(rows, model.pad_id, CPU)
    assert forwards.backbones.frozen.scripted.pack([model.adapters], batch.lengths) is not None
    scripted = forwards.probabilities(model, rows)
    with torch.no_grad():
        eager = F.softmax(model.logits(backbone, batch), dim=-1)
    assert torch.allclose(scripted, eager, atol=1e-5, rtol=0)


def test_a_tuner_the_scripted_forward_lacks_gets_eager_teacher_labels(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    forwards = TrainingForwards(backbone, TrainingSpeedups(precision="fp32"))
    model = _model(backbone, "lora").eval()
    rows = _rows(model)
    with torch.no_grad():
        eager = F.softmax(model.logits(backbone, collate(rows, model.pad_id, CPU)), dim=-1)
    assert torch.allclose(forwards.probabilities(model, rows), eager, atol=1e-6, rtol=0)


def test_teacher_labels_are_computed_once_per_pool_row_and_kept_in_order():
    computed: list[int] = []

    def probabilities(rows):
        computed.extend(row.mask_index for row in rows)
        return torch.tensor([[float(row.mask_index), 1.0] for row in rows])

    labels = TeacherLabels(probabilities)
    first = labels([3, 1, 3], [EncodedRow([0], 3), EncodedRow([0], 1), EncodedRow([0], 3)])
    second = labels([1, 5], [EncodedRow([0], 1), EncodedRow([0], 5)])
    assert first[:, 0].tolist() == [3.0, 1.0, 3.0] and second[:, 0].tolist() == [1.0, 5.0]
    assert computed == [3, 1, 5]


def test_tokenise_once_rows_equal_tokenising_each_batch(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    model = _model(backbone)
    pool_examples = [Example(text) for text in TEXTS]
    encoded_texts: list[str] = []

    def encode(texts, texts_b):
        encoded_texts.extend(texts)
        return model.encode(texts, texts_b)

    pool = EncodedPool(pool_examples)
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):
        picks = torch.randint(len(TEXTS), (5,), generator=generator).tolist()
        assert pool.rows(picks, encode) == _rows(model, [TEXTS[i] for i in picks])
    assert len(encoded_texts) == len(set(encoded_texts))


def test_length_runs_split_only_where_padding_outweighs_a_forward():
    assert length_runs([10, 12, 11, 9]) == [[0, 1, 2, 3]]
    runs = length_runs([5, 60, 6, 62, 7, 61, 5, 60] * 2)
    assert sorted(i for run in runs for i in run) == list(range(16))
    assert len(runs) == 2 and {len(run) for run in runs} == {8}
    assert length_runs([3, 9], forward_cost=0) == [[0], [1]]


def test_bucketed_forward_and_gradient_equal_one_batch(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    model = _model(backbone).train()
    rows = _rows(model, ["a"] * 3 + [" ".join(["great"] * 25)] * 3 + TEXTS)
    assert len(length_runs([len(row.input_ids) for row in rows])) > 1
    params = [p for p in model.parameters() if p.requires_grad]

    def forward(batch):
        return model.logits(backbone, batch)

    split = bucketed(forward, rows, model.pad_id, CPU)
    split_grads = torch.autograd.grad(split.square().sum(), params, allow_unused=True)
    whole = forward(collate(rows, model.pad_id, CPU))
    whole_grads = torch.autograd.grad(whole.square().sum(), params, allow_unused=True)
    assert torch.allclose(split, whole, atol=1e-5, rtol=0)
    for a, b in zip(split_grads, whole_grads, strict=True):
        assert (a is None) == (b is None)
        assert a is None or torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_bf16_only_where_the_cpu_has_bf16_hardware(monkeypatch):
    assert resolve_training_precision("auto", CPU) == ("bf16" if native_bf16(CPU) else "fp32")
    assert resolve_training_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_training_precision("fp32", CPU) == "fp32"
    monkeypatch.setattr("list_core.training_precision.native_bf16", lambda device: False)
    assert resolve_training_precision("auto", CPU) == "fp32"
    with pytest.raises(ValueError, match="bf16 hardware"):
        resolve_training_precision("bf16", CPU)
    with pytest.raises(ValueError, match="training precision must be one of"):
        resolve_training_precision("fp16", CPU)


@needs_bf16
def test_the_bf16_twin_multiplies_frozen_layers_in_bf16_and_trains_fp32(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    before = {k: v.clone() for k, v in backbone.encoder.state_dict().items()}
    forwards = TrainingForwards(backbone, TrainingSpeedups())
    trains = forwards.backbones.trains
    assert forwards.precision == "bf16" and trains is not backbone
    frozen = [m for m in trains.encoder.modules() if isinstance(m, Bf16FrozenLinear)]
    assert frozen and all(m.weight_bf16.dtype == torch.bfloat16 for m in frozen)
    assert all(m.weight.dtype == torch.float32 for m in frozen)
    assert not any(isinstance(m, Bf16FrozenLinear) for m in backbone.encoder.modules())
    model = _model(backbone).train()
    rows = _rows(model)
    logits = forwards.logits(model, rows)
    assert logits.dtype == torch.float32
    with torch.no_grad():
        exact = model.logits(backbone, collate(rows, model.pad_id, CPU))
    assert torch.allclose(logits, exact, atol=0.05, rtol=0.05)
    logits.sum().backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    after = backbone.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def _exact_products(model, backbone, soft, rows, labeled_loss) -> torch.Tensor:
    """g_lab . grad l_i by one backward per example."""
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.autograd.grad(labeled_loss, params, allow_unused=True)
    products = []
    for i in range(len(rows)):
        losses = kl_per_example(soft, model.logits(backbone, collate(rows, model.pad_id, CPU)))
        grads = torch.autograd.grad(losses[i], params, allow_unused=True)
        pairs = [(a, b) for a, b in zip(g, grads, strict=True) if a is not None and b is not None]
        products.append(sum((a * b).sum() for a, b in pairs))
    return torch.stack(products)


def test_forward_mode_alignment_is_exact_in_fp64(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    encoder = _copy_sharing(backbone.encoder)
    encoder.config._attn_implementation = "eager"  # forward-mode AD goes through it
    eager = backbone.twin(encoder, "fp32", False)
    model = TaskModel(backbone, SENTIMENT, "prompt", AdapterConfig(bottleneck=8, init_std=0.05), 32)
    model.double()
    backbone.encoder.double()
    try:
        rows, labeled = _rows(model, UNLABELED), _rows(model, [e.text for e in EXAMPLES])
        soft = F.softmax(torch.randn(len(rows), 2, dtype=torch.float64) * 2, -1)

        def labeled_loss():
            return F.cross_entropy(model(eager, collate(labeled, model.pad_id, CPU)), _gold())

        exact = _exact_products(model, eager, soft, rows, labeled_loss())
        batch = collate(rows, model.pad_id, CPU)
        losses, alignment = losses_and_alignment(
            model,
            labeled_loss(),
            lambda p: kl_per_example(soft, functional_call(model, p, (eager, batch), strict=False)),
        )
        assert torch.allclose(alignment, exact, rtol=1e-8, atol=1e-12)
        assert torch.allclose(losses, kl_per_example(soft, model(eager, batch)), atol=1e-12)
        assert losses.requires_grad
    finally:
        backbone.encoder.float()


@needs_bf16
@pytest.mark.parametrize("tuner", FORWARD_AD_TUNERS)
def test_fused_reweighting_matches_exact_products_for_each_tuner(tiny_roberta_path, tuner):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    forwards = TrainingForwards(backbone, TrainingSpeedups())
    method = "classic" if tuner == "mlp" else "list"
    model = _model(backbone, tuner, method=method).train()
    assert forwards.fuses(model)
    rows, labeled = _rows(model), _rows(model, [e.text for e in EXAMPLES])
    soft = F.softmax(torch.randn(len(rows), 2, generator=torch.Generator().manual_seed(1)), -1)
    trains = forwards.backbones.trains
    labeled_loss = F.cross_entropy(forwards.logits(model, labeled), _gold())
    exact = _exact_products(model, trains, soft, rows, labeled_loss)
    logits, losses, alignment = forwards.reweighted(model, rows, soft, labeled, _gold(), 1e-3)
    assert torch.allclose(alignment, exact, rtol=1e-2, atol=1e-3 * exact.abs().max())
    assert torch.allclose(losses, kl_per_example(soft, logits))
    losses.sum().backward()
    assert any(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_every_tuner_outside_the_forward_ad_list_is_known_to_need_the_difference():
    assert set(TUNERS) - set(FORWARD_AD_TUNERS) == {"partial"}


@pytest.mark.parametrize(
    "tuner, hp",
    [("partial", {"partial_layers": 1}), ("adapter", {"hidden_dropout": 0.1})],
)
def test_what_forward_mode_cannot_take_falls_back_to_the_finite_difference(
    tiny_roberta_path, tuner, hp, monkeypatch
):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    differences = []
    original = TrainingForwards._by_difference

    def counting(self, *args):
        differences.append(args[0].tuner)
        return original(self, *args)

    monkeypatch.setattr(TrainingForwards, "_by_difference", counting)
    result = train_task(
        backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", {**TINY_STEPS, **hp}, tuner=tuner
    )
    assert result.metrics["steps"] == result.hyperparameters.total_steps("list", len(UNLABELED))
    assert differences and set(differences) == {tuner}


def test_without_bf16_hardware_every_forward_of_a_default_job_stays_fp32(
    tiny_roberta_path, monkeypatch
):
    monkeypatch.setattr("list_core.training_precision.native_bf16", lambda device: False)
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    forwards = TrainingForwards(backbone, TrainingSpeedups())
    assert forwards.precision == "fp32"
    # the gradient forwards, labelled batches and evaluation reports run on the backbone itself
    assert forwards.backbones.trains is backbone
    assert forwards.backbones.frozen.encoder is backbone.encoder
    assert not forwards.fuses(_model(backbone))
    result = train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS)
    assert result.metrics["training_precision"] == "fp32"


def test_the_jobs_metrics_say_which_speedups_ran(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    plain = train_task(
        backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS, speedups=NO_SPEEDUPS
    )
    assert plain.metrics["training_precision"] == "fp32"
    assert plain.metrics["training_speedups"] == NO_SPEEDUPS.as_dict()
    fast = train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS)
    assert fast.metrics["training_precision"] == ("bf16" if native_bf16(CPU) else "fp32")
    assert fast.metrics["training_speedups"] == TrainingSpeedups().as_dict()


def test_concurrent_jobs_take_turns_at_forward_mode_and_match_a_lone_run(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    schedule = {**TINY_STEPS, "warmup_fraction": 0.0, "unlabeled_steps": 6}
    alone = train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", schedule)
    results, errors = [], []

    def job():
        try:
            results.append(train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", schedule))
        except Exception as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    expected = alone.model.state_dict()
    for result in results:
        state = result.model.state_dict()
        assert all(torch.equal(state[k], expected[k]) for k in expected)
