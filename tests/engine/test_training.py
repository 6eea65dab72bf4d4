import pytest
import torch

from list_core.adapters import adapter_plan
from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.data import Example
from list_core.field_error import FieldError
from list_core.hyperparams import resolve_hyperparameters
from list_core.progress import TrainingCancelled
from list_core.prompts import TaskSpec
from list_core.training import train_task

from .helpers import EXAMPLES, SENTIMENT, TINY_STEPS, UNLABELED


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.device
@pytest.mark.parametrize("method", ["list", "prompt", "classic"])
def test_backbone_is_bit_identical_after_training_and_only_task_tensors_train(
    tiny_roberta_path, method, device
):
    backbone = load_backbone(str(tiny_roberta_path), device)
    before = _snapshot(backbone.encoder)
    head_before = backbone.mlm_head.decoder_weight.clone()
    result = train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, method, TINY_STEPS)
    after = backbone.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(head_before, backbone.mlm_head.decoder_weight)
    assert all(not p.requires_grad for p in backbone.encoder.parameters())
    names = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert names and all(n.startswith(("adapters.", "head.")) for n in names)
    assert result.metrics["method"] == method
    assert result.metrics["sessions"] == (2 if method == "list" else 0)
    assert result.metrics["steps"] == result.hyperparameters.total_steps(method, len(UNLABELED))


@pytest.mark.device
def test_training_changes_task_tensors_and_is_deterministic(tiny_roberta_path, device):
    backbone = load_backbone(str(tiny_roberta_path), device)
    first = train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS)
    second = train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS)
    other_seed = train_task(
        backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", {**TINY_STEPS, "seed": 7}
    )
    a, b, c = (r.model.state_dict() for r in (first, second, other_seed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_progress_reports_every_phase_in_order(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    events = []
    train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS, progress=events.append)
    phases = [e.phase for e in events]
    assert phases[:4] == ["teacher"] * 4
    session_one = [e.phase for e in events if e.session == 1]
    assert session_one == ["distill", "distill", "reweight", "reweight", "labeled", "labeled"]
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    distill = [e for e in events if e.phase in ("distill", "reweight")]
    assert all(e.agreement is not None and 0 <= e.agreement <= 1 for e in distill)
    assert all("kl" in e.losses for e in distill)


def test_cancellation_stops_within_one_step(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    steps = []

    def cancel_after_five() -> bool:
        return len(steps) >= 5

    with pytest.raises(TrainingCancelled, match="after 5 steps"):
        train_task(
            backbone,
            SENTIMENT,
            EXAMPLES,
            UNLABELED,
            "list",
            TINY_STEPS,
            progress=steps.append,
            should_cancel=cancel_after_five,
        )
    assert len(steps) == 5


def test_without_warmup_meta_reweighting_starts_at_once(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    events = []
    train_task(
        backbone,
        SENTIMENT,
        EXAMPLES,
        UNLABELED,
        "list",
        {**TINY_STEPS, "distillation_warmup": False},
        progress=events.append,
    )
    assert {e.phase for e in events if e.session == 1} == {"reweight", "labeled"}
    events.clear()
    train_task(
        backbone,
        SENTIMENT,
        EXAMPLES,
        UNLABELED,
        "list",
        {**TINY_STEPS, "meta_reweighting": False},
        progress=events.append,
    )
    assert {e.phase for e in events if e.session == 1} == {"distill", "labeled"}


def test_bad_examples_are_rejected_naming_the_field(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    with pytest.raises(FieldError) as error:
        train_task(
            backbone, SENTIMENT, [*EXAMPLES, Example("x", "neutral")], (), "prompt", TINY_STEPS
        )
    assert error.value.field == "examples[6].label"
    with pytest.raises(FieldError, match=r"each label needs an example; none for \['negative'\]"):
        train_task(backbone, SENTIMENT, EXAMPLES[:3], (), "prompt", TINY_STEPS)
    with pytest.raises(FieldError) as error:
        train_task(
            backbone, SENTIMENT, [*EXAMPLES, Example("  ", "positive")], (), "prompt", TINY_STEPS
        )
    assert error.value.field == "examples[6].text"


def test_hyperparameter_budgets_and_overrides():
    paper = resolve_hyperparameters({"budget": "paper"})
    assert (paper.sessions, paper.teacher_lr, paper.student_lr) == (6, 5e-6, 1e-4)
    assert (paper.unlabeled_steps, paper.unlabeled_batch, paper.labeled_steps) == (1000, 16, 400)
    assert (paper.bottleneck, paper.max_length, paper.grad_clip) == (128, 128, 1.0)
    auto = resolve_hyperparameters(None, n_labeled=30, n_unlabeled=40)
    assert auto.budget == "auto" and auto.unlabeled_steps == 8
    assert (auto.teacher_lr, auto.student_lr) == (1e-4, 1e-4)
    classic = resolve_hyperparameters(None, n_labeled=30, n_unlabeled=0, method="classic")
    assert (classic.teacher_lr, classic.student_lr) == (1e-3, 1e-3)
    fast = resolve_hyperparameters({"budget": "fast"}, n_labeled=30, n_unlabeled=40)
    assert (fast.teacher_lr, fast.student_lr) == (1e-3, 1e-3)
    explicit = resolve_hyperparameters({"teacher_lr": 3e-4}, n_labeled=30, method="prompt")
    assert (explicit.teacher_lr, explicit.student_lr) == (3e-4, 1e-4)
    assert resolve_hyperparameters(None, n_labeled=30, n_unlabeled=0).sessions == 0
    assert resolve_hyperparameters({"sessions": 5}).sessions == 5
    for bad, field in (
        ({"sessions": -1}, "sessions"),
        ({"teacher_lr": "x"}, "teacher_lr"),
        ({"budget": "huge"}, "budget"),
        ({"nope": 1}, "nope"),
        ({"placement": ["x"]}, "placement"),
    ):
        with pytest.raises(FieldError) as error:
            resolve_hyperparameters(bad)
        assert error.value.field == f"hyperparameters.{field}"


def test_total_steps_count_only_what_the_method_runs():
    hp = resolve_hyperparameters({"budget": "fast", "sessions": 10})
    per_session = hp.unlabeled_steps + hp.labeled_steps
    assert hp.total_steps("list", n_unlabeled=40) == hp.teacher_steps + 10 * per_session
    for no_self_training in (("classic", 40), ("prompt", 40), ("list", 0)):
        assert hp.total_steps(*no_self_training) == hp.teacher_steps
        assert hp.sessions_run(*no_self_training) == 0


def test_cost_grows_with_steps_not_with_unlabeled_pool(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    calls = {"count": 0}
    tokenizer = backbone.tokenizer
    original = type(tokenizer).__call__

    def counting(self, texts, *args, **kwargs):
        calls["count"] += len(texts) if isinstance(texts, list) else 1
        return original(self, texts, *args, **kwargs)

    type(tokenizer).__call__ = counting
    try:
        for pool in (UNLABELED, UNLABELED * 500):
            calls["count"] = 0
            train_task(backbone, SENTIMENT, EXAMPLES, pool, "list", {**TINY_STEPS, "sessions": 1})
            tokenized = calls["count"]
            assert tokenized < 200, f"tokenized {tokenized} texts for a pool of {len(pool)}"
    finally:
        type(tokenizer).__call__ = original


def test_pair_task_trains_on_unlabelled_pairs(tiny_bert_path):
    backbone = load_backbone(str(tiny_bert_path), "cpu")
    spec = TaskSpec.create(["no", "yes"], "{text} ? {mask} , {text_b}")
    pairs = [Example("the movie", "no", "awful"), Example("the film", "yes", "great fun")]
    unlabeled = [Example("a story", text_b="lovely"), Example("the plot", text_b="dull")]
    result = train_task(backbone, spec, pairs, unlabeled, "list", TINY_STEPS)
    assert result.metrics["sessions"] == 2
    with pytest.raises(FieldError) as error:
        train_task(backbone, spec, pairs, ["no second text"], "list", TINY_STEPS)
    assert error.value.field == "unlabeled[0].text_b"


def test_hidden_dropout_acts_only_in_training_mode_and_only_in_its_plan(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    clean = train_task(backbone, SENTIMENT, EXAMPLES, (), "prompt", {**TINY_STEPS}).model
    batch = collate(clean.encode(["a lovely story"] * 4, [None] * 4), clean.pad_id, "cpu")
    with torch.no_grad():
        reference = clean.logits(backbone, batch)
        clean.hidden_dropout = 0.5
        clean.eval()
        assert torch.equal(clean.logits(backbone, batch), reference)
        clean.train()
        noisy = [clean.logits(backbone, batch) for _ in range(2)]
        assert not torch.allclose(noisy[0], noisy[1])
        with adapter_plan(None):
            plain = backbone.hidden_states(batch.input_ids, batch.attention_mask)
        assert torch.equal(plain, backbone.hidden_states(batch.input_ids, batch.attention_mask))


def test_list_with_hidden_dropout_reweights_and_stays_deterministic(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    noisy = {**TINY_STEPS, "hidden_dropout": 0.1}
    runs = [train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", noisy) for _ in "ab"]
    first, second = (run.model.state_dict() for run in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
    sessions = [h for h in runs[0].metrics["history"] if h["phase"] == "session"]
    assert all(0 < h["kept_fraction"] <= 1 for h in sessions)
    with pytest.raises(FieldError, match="hidden_dropout"):
        resolve_hyperparameters({"hidden_dropout": 1.0})


def test_balanced_pseudo_labels_change_the_student_and_stay_deterministic(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    balanced = {**TINY_STEPS, "balance_pseudo_labels": True}
    runs = [train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", balanced) for _ in "ab"]
    plain = train_task(backbone, SENTIMENT, EXAMPLES, UNLABELED, "list", TINY_STEPS)
    first, second, unbalanced = (run.model.state_dict() for run in (*runs, plain))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], unbalanced[k]) for k in first)
    assert runs[0].hyperparameters.balance_pseudo_labels is True
    with pytest.raises(FieldError, match="balance_pseudo_labels"):
        resolve_hyperparameters({"balance_pseudo_labels": "yes"})
