import torch
from torch.func import functional_call
from torch.nn import functional as F

from list_core.adapters import AdapterConfig
from list_core.backbone import load_backbone
from list_core.batching import collate
from list_core.reweighting import class_balanced, gradient_alignment, meta_weights
from list_core.task_model import TaskModel

from .helpers import EXAMPLES, SENTIMENT, UNLABELED


def _kl(target, logits):
    log_student = F.log_softmax(logits, -1)
    return (target * (target.clamp(min=1e-12).log() - log_student)).sum(-1)


def test_finite_difference_matches_exact_per_example_gradient_products(tiny_roberta_path):
    torch.manual_seed(0)
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    config = AdapterConfig(bottleneck=8, init_std=0.05)
    model = TaskModel(backbone, SENTIMENT, "prompt", config, 32).double()
    backbone.encoder.double()
    try:
        batch = collate(model.encode(UNLABELED, [None] * len(UNLABELED)), model.pad_id, "cpu")
        target = F.softmax(torch.randn(len(UNLABELED), 2, dtype=torch.float64) * 2, -1)
        labeled = collate(model.encode([e.text for e in EXAMPLES], [None] * 6), model.pad_id, "cpu")
        gold = torch.tensor([SENTIMENT.labels.index(e.label) for e in EXAMPLES])
        params = [p for p in model.parameters() if p.requires_grad]

        labeled_grad = torch.autograd.grad(F.cross_entropy(model(backbone, labeled), gold), params)
        exact = []
        for i in range(len(UNLABELED)):
            loss_i = _kl(target, model(backbone, batch))[i]
            grads = torch.autograd.grad(loss_i, params)
            exact.append(sum((a * b).sum() for a, b in zip(labeled_grad, grads, strict=True)))
        exact = torch.stack(exact)

        losses = _kl(target, model(backbone, batch))
        estimate = gradient_alignment(
            model,
            F.cross_entropy(model(backbone, labeled), gold),
            losses,
            lambda p: _kl(target, functional_call(model, p, (backbone, batch), strict=False)),
            epsilon=1e-6,
        )
        assert torch.allclose(estimate, exact, rtol=1e-3, atol=1e-6 * exact.abs().max())
        weights = meta_weights(estimate)
        assert torch.isclose(weights.sum(), torch.tensor(1.0, dtype=weights.dtype))
        assert torch.equal(weights > 0, exact > 0)
    finally:
        backbone.encoder.float()


def test_meta_weights_clip_and_normalise():
    weights = meta_weights(torch.tensor([2.0, -1.0, 6.0, 0.0]))
    assert weights.tolist() == [0.25, 0.0, 0.75, 0.0]
    assert meta_weights(torch.tensor([-1.0, -2.0])).tolist() == [0.0, 0.0]


def test_class_balance_lifts_the_rare_pseudo_label_and_keeps_the_total():
    predicted = torch.tensor([0, 0, 0, 1])
    counts = torch.tensor([3.0, 1.0])
    balanced = class_balanced(torch.full((4,), 0.25), predicted, counts)
    assert torch.allclose(balanced, torch.tensor([1 / 6, 1 / 6, 1 / 6, 1 / 2]))
    dropped = class_balanced(torch.tensor([0.0, 0.5, 0.5, 0.0]), predicted, counts)
    assert dropped.tolist()[0] == 0.0 and dropped.tolist()[3] == 0.0
    assert torch.isclose(dropped.sum(), torch.tensor(1.0))
    assert class_balanced(torch.zeros(4), predicted, counts).tolist() == [0.0] * 4


def test_no_parameter_is_changed_by_the_estimate(tiny_roberta_path):
    backbone = load_backbone(str(tiny_roberta_path), "cpu")
    model = TaskModel(backbone, SENTIMENT, "prompt", AdapterConfig(bottleneck=4), 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = collate(model.encode(UNLABELED, [None] * len(UNLABELED)), model.pad_id, "cpu")
    target = torch.full((len(UNLABELED), 2), 0.5)
    losses = _kl(target, model(backbone, batch))
    gradient_alignment(
        model,
        losses.mean(),
        losses,
        lambda p: _kl(target, functional_call(model, p, (backbone, batch), strict=False)),
        epsilon=1e-3,
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
