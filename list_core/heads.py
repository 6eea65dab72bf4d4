"""Per-task classification heads over the frozen encoder's hidden states.

- `MlmPromptHead`: the backbone's own MLM head (dense + LayerNorm copied per task) restricted to
  the label words' decoder rows, scored at the mask — prompt-based fine-tuning as in LiST.
- `SimilarityHead`: for encoders without an MLM head; cosine similarity of the mean-pooled text
  to label sentences ("It was great .") with a learnable temperature (see DESIGN.md).
- `ClassicHead`: a linear layer over the mean-pooled text, the standard fine-tuning baseline.
"""

import copy
import functools
import math
import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from list_core.backbone import MlmHeadWeights
from list_core.placeholders import placeholder, placeholder_like, placeholder_linear

HEAD_KINDS = ("mlm", "similarity", "classic")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class MlmPromptHead(nn.Module):
    kind = "mlm"

    def __init__(self, pretrained: MlmHeadWeights, word_ids: list[int]) -> None:
        super().__init__()
        self.dense = copy.deepcopy(pretrained.dense)
        self.layer_norm = copy.deepcopy(pretrained.layer_norm)
        self.activation = pretrained.activation
        ids = torch.tensor(word_ids, device=pretrained.decoder_weight.device)
        self.word_weight = nn.Parameter(pretrained.decoder_weight.detach()[ids].clone())
        self.word_bias = nn.Parameter(pretrained.decoder_bias.detach()[ids].clone())
        self.requires_grad_(True)

    @classmethod
    def to_load(cls, pretrained: MlmHeadWeights, word_count: int) -> "MlmPromptHead":
        """The head's structure with stand-ins for every tensor, which are loaded next."""
        head = cls.__new__(cls)
        nn.Module.__init__(head)
        head.dense = placeholder_like(pretrained.dense)
        head.layer_norm = placeholder_like(pretrained.layer_norm)
        head.activation = pretrained.activation
        weight = pretrained.decoder_weight
        head.word_weight = placeholder(word_count, weight.shape[1], dtype=weight.dtype)
        head.word_bias = placeholder(word_count, dtype=pretrained.decoder_bias.dtype)
        return head

    @property
    def batchable(self) -> bool:
        """Whether `mlm_probabilities` computes exactly what this head's forward does."""
        return (
            exact_gelu(self.activation)
            and self.dense.bias is not None
            and self.layer_norm.weight is not None
            and self.layer_norm.bias is not None
        )

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_index: torch.Tensor
    ) -> torch.Tensor:
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        at_mask = hidden[rows, mask_index]
        features = self.layer_norm(self.activation(self.dense(at_mask)))
        return features @ self.word_weight.T + self.word_bias


def exact_gelu(activation: nn.Module) -> bool:
    """Whether `activation` is the exact (erf) GELU, as RoBERTa's and BERT's MLM heads use:
    then `mlm_probabilities` computes what the head's own forward does."""
    if isinstance(activation, nn.GELU):
        return activation.approximate == "none"
    return getattr(activation, "act", None) is F.gelu


def _mlm_group_probabilities(
    hidden: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    group_rows: list[int],
    dense_weights: list[torch.Tensor],
    dense_biases: list[torch.Tensor],
    norm_weights: list[torch.Tensor],
    norm_biases: list[torch.Tensor],
    norm_eps: list[float],
    word_weights: list[torch.Tensor],
    word_biases: list[torch.Tensor],
) -> list[torch.Tensor]:
    """Per head, the softmax of its label logits for its run of `rows` (consecutive in
    `rows`, `group_rows[i]` of them), read at `positions`; scripted by the caller."""
    at_mask = hidden[rows, positions]
    out: list[torch.Tensor] = []
    start = 0
    for i in range(len(group_rows)):
        features = F.gelu(
            F.linear(at_mask.narrow(0, start, group_rows[i]), dense_weights[i], dense_biases[i])
        )
        features = F.layer_norm(
            features, [features.size(-1)], norm_weights[i], norm_biases[i], norm_eps[i]
        )
        logits = F.linear(features, word_weights[i], word_biases[i])
        out.append(F.softmax(logits.float(), dim=-1))
        start += group_rows[i]
    return out


@functools.cache
def _scripted(function: Callable) -> torch.jit.ScriptFunction:
    """`function` scripted, on first use (not at import), once."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated")
        return torch.jit.script(function)


def mlm_probabilities(
    heads: list["MlmPromptHead"],
    groups: list[list[int]],
    hidden: torch.Tensor,
    mask_index: list[int],
) -> list[torch.Tensor]:
    """Label probabilities of many MLM prompt heads at once: `groups[i]` lists the batch rows
    `heads[i]` scores, at their mask tokens (`mask_index`, one per batch row). Each head keeps
    its own weights; the loop over heads runs in TorchScript, so the whole scoring releases
    the GIL once, where each head's forward made about ten torch calls, each a GIL hand-off:
    beside a busy Python thread at a 1 ms switch interval, 32 heads one by one took 460 ms
    (9.9 alone), and 23 ms in one call (`python -m benchmarks.mlm_heads`, RoBERTa-base's
    width). The heads must use `exact_gelu`."""
    rows = [row for indices in groups for row in indices]
    device = hidden.device
    return _scripted(_mlm_group_probabilities)(
        hidden,
        torch.tensor(rows, device=device),
        torch.tensor([mask_index[row] for row in rows], device=device),
        [len(indices) for indices in groups],
        [head.dense.weight for head in heads],
        [head.dense.bias for head in heads],
        [head.layer_norm.weight for head in heads],
        [head.layer_norm.bias for head in heads],
        [float(head.layer_norm.eps) for head in heads],
        [head.word_weight for head in heads],
        [head.word_bias for head in heads],
    )


class SimilarityHead(nn.Module):
    kind = "similarity"

    def __init__(self, label_embeddings: torch.Tensor, temperature: float = 0.05) -> None:
        super().__init__()
        self.label_embeddings = nn.Parameter(label_embeddings.detach().clone())
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @classmethod
    def to_load(cls, num_labels: int, hidden_size: int) -> "SimilarityHead":
        """The head's structure with stand-ins for every tensor, which are loaded next."""
        head = cls.__new__(cls)
        nn.Module.__init__(head)
        head.label_embeddings = placeholder(num_labels, hidden_size)
        head.log_scale = placeholder()
        return head

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_index: torch.Tensor
    ) -> torch.Tensor:
        pooled = F.normalize(mean_pool(hidden, attention_mask), dim=-1)
        labels = F.normalize(self.label_embeddings, dim=-1)
        return self.log_scale.exp() * pooled @ labels.T


def similarity_logits(
    heads: list[SimilarityHead],
    owner: torch.Tensor,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """`SimilarityHead` logits of many heads at once: row i scored by `heads[owner[i]]`. The
    heads must have the same number of labels. A dozen torch calls however many heads, where
    one call per head each cost a GIL hand-off in a busy server."""
    pooled = F.normalize(mean_pool(hidden, attention_mask), dim=-1)
    labels = F.normalize(torch.stack([head.label_embeddings for head in heads]), dim=-1)
    scales = torch.stack([head.log_scale for head in heads]).exp()
    scores = torch.bmm(labels.index_select(0, owner), pooled.unsqueeze(-1)).squeeze(-1)
    return scales.index_select(0, owner).unsqueeze(-1) * scores


class ClassicHead(nn.Module):
    kind = "classic"

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        generator: torch.Generator | None = None,
        initialise: bool = True,
    ) -> None:
        """`initialise=False` builds stand-ins (`placeholders`), for a state that is loaded next."""
        super().__init__()
        if not initialise:
            self.linear = placeholder_linear(hidden_size, num_labels)
            return
        self.linear = nn.Linear(hidden_size, num_labels)
        nn.init.normal_(self.linear.weight, 0.0, 0.02, generator=generator)
        nn.init.zeros_(self.linear.bias)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, mask_index: torch.Tensor
    ) -> torch.Tensor:
        return self.linear(mean_pool(hidden, attention_mask))


def _classic_group_probabilities(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    group_rows: list[int],
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
) -> list[torch.Tensor]:
    """Per head, the softmax of its Linear over the mean-pooled text of its run of `rows`
    (consecutive in `rows`, `group_rows[i]` of them); scripted by the caller."""
    pooled = mean_pool(hidden.index_select(0, rows), attention_mask.index_select(0, rows))
    out: list[torch.Tensor] = []
    start = 0
    for i in range(len(group_rows)):
        logits = F.linear(pooled.narrow(0, start, group_rows[i]), weights[i], biases[i])
        out.append(F.softmax(logits.float(), dim=-1))
        start += group_rows[i]
    return out


def classic_probabilities(
    heads: list[ClassicHead],
    groups: list[list[int]],
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
) -> list[torch.Tensor]:
    """Label probabilities of many classic heads at once (`groups[i]` lists the batch rows
    `heads[i]` scores), in one TorchScript call for the same reason as `mlm_probabilities`:
    each head's own forward and softmax were a handful of GIL hand-offs per task."""
    rows = [row for indices in groups for row in indices]
    return _scripted(_classic_group_probabilities)(
        hidden,
        attention_mask,
        torch.tensor(rows, device=hidden.device),
        [len(indices) for indices in groups],
        [head.linear.weight for head in heads],
        [head.linear.bias for head in heads],
    )
