"""A TorchScript serving forward for BERT- and RoBERTa-style encoders with per-row adapters.

Why: the eager Hugging Face forward is a few hundred small torch calls, and each one releases
the GIL and must win it back. In a server the event loop runs Python in the same process, so
every win-back can wait out the interpreter's 5 ms switch interval: next to one busy Python
thread a 14 ms single-row forward took 3 s (benchmarks/RESULTS.md). A scripted module runs the
whole forward in C++ and releases the GIL once, so the model thread and the event loop really
use two cores.

The module shares the encoder's tensors (no copy, but for prepacked weights) and computes
exactly what the eager encoder with a `MixedAdapterPlan` computes: `h + f(h A) B` after each
attention-output and FFN-output dense, per row. The Linear layers run on the real tokens
only (a bf16 encoder on the CPU on their count rounded up, see `linear_rows`); attention pads
them back into rows in buckets of consecutive rows, each padded only to its own longest row
(`attention_buckets`), so a batch's short rows do not pay for its longest one. Like the eager
plan it applies a batch's adapters in one of two ways:
- `gather`: each row's weights are stacked and one bmm runs over the padded rows;
- `group`: within each attention bucket the rows are ordered by adapter, so each adapter's
  tokens there are one contiguous slice of the packed tokens, and one matmul per slice runs with
  the adapter's own tensors. No weights are copied and no adapter work is done on pads; the
  order changes only inside a bucket, so no row is padded further than under `gather`.
A bf16 encoder on a CPU with oneDNN bf16 kernels runs the FFN's first Linear and its GELU as
one oneDNN call (`fuses_gelu_by_default`), and every Linear on a copy of its weight prepacked
once into oneDNN's layout (`packs_weights_by_default`).
Asked for one token per row (`outputs`, an MLM head's mask tokens), the last layer runs its
query, attention output, adapters, norms and FFN on those tokens alone
(`_Layer.forward_selected`).
Encoders it does not cover (another activation or position scheme, quantised or compiled twins,
mixed adapter shapes in one batch) keep the eager path.

TorchScript is deprecated upstream in favour of torch.compile/torch.export, but it is what runs
a whole forward with one GIL release on the pinned torch 2.13 without a C++ toolchain at run
time; `LISTSERVE_SERVING_SCRIPTED=false` returns to the eager forward.
"""

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from list_core.adapters import PLACEMENTS, AdapterSet, AdapterSite, check_apply_mode

SUPPORTED_MODELS = ("BertModel", "RobertaModel", "XLMRobertaModel")


@dataclass(frozen=True)
class PackedAdapters:
    """A batch's adapter weights as the scripted forward takes them.

    `downs` and `ups` list the weights site by site. Within a site there is one entry per row
    (`gather`), one per run of consecutive rows with the same set (`group`), or one for a batch
    with one set. `group_rows` (`group` only) counts each run's rows, in the order `order` puts
    the batch's rows in; `order` is None when the rows are in that order already.
    `bucket_rows` fixes the attention buckets (rows per bucket, in `order`) when the runs were
    formed inside them; None lets the forward choose (`attention_buckets`).
    """

    downs: list[torch.Tensor]
    ups: list[torch.Tensor]
    gelu: bool
    group_rows: list[int]
    order: list[int] | None = None
    bucket_rows: list[int] | None = None


# One attention bucket: ([first token, tokens], positions of its tokens in [rows, longest]
# flattened, the [rows, 1, 1, longest] key mask).
_Bucket = tuple[list[int], torch.Tensor, torch.Tensor]
# Where a bucket sits, worked out in Python from the rows' lengths: [first row, rows, first
# token, tokens, longest row].
_Span = list[int]
# The weights of a layer's Linear layers, which `packs_weights_by_default` prepacks.
_LINEAR_WEIGHTS = (
    "q_weight",
    "k_weight",
    "v_weight",
    "attn_out_weight",
    "ffn_in_weight",
    "ffn_out_weight",
)


class _Layer(nn.Module):
    """One transformer layer's frozen weights (shared views) and its forward."""

    def __init__(self, layer: nn.Module, eps: float, fused_gelu: bool, packed: bool) -> None:
        super().__init__()
        attention, intermediate, output = layer.attention, layer.intermediate, layer.output
        tensors = {
            "q_weight": attention.self.query.weight,
            "q_bias": attention.self.query.bias,
            "k_weight": attention.self.key.weight,
            "k_bias": attention.self.key.bias,
            "v_weight": attention.self.value.weight,
            "v_bias": attention.self.value.bias,
            "attn_out_weight": _dense(attention.output).weight,
            "attn_out_bias": _dense(attention.output).bias,
            "attn_norm_weight": attention.output.LayerNorm.weight,
            "attn_norm_bias": attention.output.LayerNorm.bias,
            "ffn_in_weight": intermediate.dense.weight,
            "ffn_in_bias": intermediate.dense.bias,
            "ffn_out_weight": _dense(output).weight,
            "ffn_out_bias": _dense(output).bias,
            "ffn_norm_weight": output.LayerNorm.weight,
            "ffn_norm_bias": output.LayerNorm.bias,
        }
        for name, tensor in tensors.items():
            tensor = tensor.detach()
            if packed and name in _LINEAR_WEIGHTS:
                tensor = torch.ops.mkldnn._reorder_linear_weight(tensor)
            self.register_buffer(name, tensor, persistent=False)
        self.heads = int(attention.self.num_attention_heads)
        self.eps = eps
        self.fused_gelu = fused_gelu
        self.packed = packed

    def forward(
        self,
        hidden: torch.Tensor,
        index: torch.Tensor,
        batch: int,
        length: int,
        buckets: list[_Bucket],
        downs: list[torch.Tensor],
        ups: list[torch.Tensor],
        segments: list[int],
        gelu_adapter: bool,
        linear_rows: int,
    ) -> torch.Tensor:
        """`downs` and `ups` hold this layer's two sites' weights, attention site first (see
        `PackedAdapters`); `segments` counts each adapter's tokens when they are grouped.
        `hidden` holds the real tokens only ([tokens, width]); `index` gives their positions in
        the flattened [batch, length] padded batch (for a gathered adapter's bmm), and attention
        runs per bucket of rows, each padded only to its own longest row. The Linear layers
        run on `linear_rows` rows (zeros after the real tokens; see `linear_rows`)."""
        rows = _pad_rows(hidden, linear_rows)
        query = self._linear(rows, self.q_weight, self.q_bias)
        key = self._linear(rows, self.k_weight, self.k_bias)
        value = self._linear(rows, self.v_weight, self.v_bias)
        contexts = [
            self._attend(query, key, value, bucket[0], bucket[1], bucket[2]) for bucket in buckets
        ]
        context = contexts[0] if len(contexts) == 1 else torch.cat(contexts)
        return self._after_attention(
            context, hidden, index, batch, length, downs, ups, segments, gelu_adapter, linear_rows
        )

    def _after_attention(
        self,
        context: torch.Tensor,
        residual: torch.Tensor,
        index: torch.Tensor,
        batch: int,
        length: int,
        downs: list[torch.Tensor],
        ups: list[torch.Tensor],
        segments: list[int],
        gelu_adapter: bool,
        linear_rows: int,
    ) -> torch.Tensor:
        """Attention output dense, its adapter and norm, then the FFN, its adapter and norm,
        for the tokens of `context` ([tokens, width]; `residual` holds the layer's input for
        the same tokens, `index`, `batch` and `length` place them for a gathered adapter)."""
        width = residual.size(-1)
        tokens = residual.size(0)
        attended = self._linear(
            _pad_rows(context, linear_rows), self.attn_out_weight, self.attn_out_bias
        ).narrow(0, 0, tokens)
        per_site = len(downs) // 2
        attended = _adapt(
            attended, index, batch, length, downs[:per_site], ups[:per_site], segments, gelu_adapter
        )
        attended = F.layer_norm(
            attended + residual, [width], self.attn_norm_weight, self.attn_norm_bias, self.eps
        )
        inner = self._ffn_in(_pad_rows(attended, linear_rows))
        out = self._linear(inner, self.ffn_out_weight, self.ffn_out_bias).narrow(0, 0, tokens)
        out = _adapt(
            out, index, batch, length, downs[per_site:], ups[per_site:], segments, gelu_adapter
        )
        return F.layer_norm(
            out + attended, [width], self.ffn_norm_weight, self.ffn_norm_bias, self.eps
        )

    def _attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        spans: list[int],
        index: torch.Tensor,
        keep: torch.Tensor,
    ) -> torch.Tensor:
        """Attention for one bucket: its rows' tokens are `spans` = [first token, tokens],
        padded to [rows, longest] through `index`; returns its real tokens' contexts."""
        rows, length = keep.size(0), keep.size(-1)
        padded = [self._by_head(x, spans, index, rows, length) for x in (query, key, value)]
        context = F.scaled_dot_product_attention(padded[0], padded[1], padded[2], attn_mask=keep)
        width = query.size(-1)
        return context.transpose(1, 2).reshape(rows * length, width).index_select(0, index)

    def _by_head(
        self, packed: torch.Tensor, spans: list[int], index: torch.Tensor, rows: int, length: int
    ) -> torch.Tensor:
        """A bucket's tokens (`spans` = [first token, tokens] of `packed`) padded to its rows'
        longest through `index`, split by head: [rows, heads, length, head width]."""
        padded = _pad(packed.narrow(0, spans[0], spans[1]), index, rows, length)
        head_width = packed.size(-1) // self.heads
        return padded.view([rows, length, self.heads, head_width]).transpose(1, 2)

    def forward_selected(
        self,
        hidden: torch.Tensor,
        picks: torch.Tensor,
        buckets: list[_Bucket],
        downs: list[torch.Tensor],
        ups: list[torch.Tensor],
        segments: list[int],
        gelu_adapter: bool,
        linear_rows: int,
        picked_linear_rows: int,
    ) -> torch.Tensor:
        """The layer's output for one token per row only (`picks`: their positions among the
        packed tokens, row by row): keys and values still come from every token, but the
        query, attention, output dense, adapters, norms and FFN run on the picked tokens alone
        ([rows, width]). `segments` counts each adapter's picked tokens (its rows) when they
        are grouped."""
        rows = _pad_rows(hidden, linear_rows)
        key = self._linear(rows, self.k_weight, self.k_bias)
        value = self._linear(rows, self.v_weight, self.v_bias)
        picked = hidden.index_select(0, picks)
        count = picked.size(0)
        query = self._linear(
            _pad_rows(picked, picked_linear_rows), self.q_weight, self.q_bias
        ).narrow(0, 0, count)
        contexts: list[torch.Tensor] = []
        first_row = 0
        for bucket in buckets:
            contexts.append(self._attend_picked(query, key, value, first_row, bucket))
            first_row += bucket[2].size(0)
        context = contexts[0] if len(contexts) == 1 else torch.cat(contexts)
        one_per_row = torch.arange(count, device=hidden.device)
        return self._after_attention(
            context,
            picked,
            one_per_row,
            count,
            1,
            downs,
            ups,
            segments,
            gelu_adapter,
            picked_linear_rows,
        )

    def _attend_picked(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        first_row: int,
        bucket: _Bucket,
    ) -> torch.Tensor:
        """Attention of the bucket's rows' picked tokens (`query` rows `first_row` on, one per
        row) over their own rows' keys; returns their contexts ([rows, width])."""
        spans, index, keep = bucket
        rows, length = keep.size(0), keep.size(-1)
        width = query.size(-1)
        padded = [self._by_head(x, spans, index, rows, length) for x in (key, value)]
        asked = query.narrow(0, first_row, rows).view([rows, 1, self.heads, width // self.heads])
        context = F.scaled_dot_product_attention(
            asked.transpose(1, 2), padded[0], padded[1], attn_mask=keep
        )
        return context.transpose(1, 2).reshape(rows, width)

    def _linear(self, rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """rows W^T + b; through oneDNN with the weight prepacked in its blocked layout when
        the layer holds packed weights (see `packs_weights_by_default`)."""
        if self.packed:
            return torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
        return F.linear(rows, weight, bias)

    def _ffn_in(self, rows: torch.Tensor) -> torch.Tensor:
        """GELU(rows W + b); fused (see `fuses_gelu_by_default`), one oneDNN call that applies
        the GELU to the float32 accumulator, not a second pass over a [tokens, 4 * width]
        tensor."""
        if self.fused_gelu:
            return torch.ops.mkldnn._linear_pointwise(
                rows, self.ffn_in_weight, self.ffn_in_bias, "gelu", [], "none"
            )
        return F.gelu(self._linear(rows, self.ffn_in_weight, self.ffn_in_bias))


def _pad_rows(packed: torch.Tensor, rows: int) -> torch.Tensor:
    """`packed` ([tokens, width]) followed by zero rows up to `rows` rows."""
    extra = rows - packed.size(0)
    return packed if extra <= 0 else F.pad(packed, [0, 0, 0, extra])


def _pad(packed: torch.Tensor, index: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """[tokens, width] -> [batch, length, width], zeros at the pads."""
    padded = packed.new_zeros([batch * length, packed.size(-1)])
    return padded.index_copy_(0, index, packed).view(batch, length, packed.size(-1))


def _adapt(
    hidden: torch.Tensor,
    index: torch.Tensor,
    batch: int,
    length: int,
    down: list[torch.Tensor],
    up: list[torch.Tensor],
    segments: list[int],
    gelu: bool,
) -> torch.Tensor:
    """`hidden + f(hidden A_r) B_r` for row r's adapter, computed in the adapters' dtype: one
    matmul over the real tokens when the batch shares one adapter; one per adapter over its
    slice of tokens when `segments` gives the slices; else a bmm over the rows' weights,
    stacked here one site at a time so a batch never holds all its sites' copies. The first
    two add their result into the adapters'-dtype copy in place, which for an fp32 `hidden`
    is `hidden` itself."""
    x = hidden.to(down[0].dtype)
    if len(down) == 1:
        middle = torch.matmul(x, down[0])
        if gelu:
            middle = F.gelu(middle)
        x.addmm_(middle, up[0])
    elif len(segments) > 0:
        start = 0
        for i, count in enumerate(segments):
            rows = x.narrow(0, start, count)
            middle = torch.matmul(rows, down[i])
            if gelu:
                middle = F.gelu(middle)
            rows.addmm_(middle, up[i])
            start += count
    else:
        middle = torch.bmm(_pad(x, index, batch, length), torch.stack(down))
        if gelu:
            middle = F.gelu(middle)
        delta = torch.bmm(middle, torch.stack(up))
        x = x + delta.reshape(batch * length, delta.size(-1)).index_select(0, index)
    return x.to(hidden.dtype)


class _Encoder(nn.Module):
    def __init__(self, encoder: nn.Module, fused_gelu: bool, packed: bool) -> None:
        super().__init__()
        config = encoder.config
        embeddings = encoder.embeddings
        for name, tensor in {
            "word": embeddings.word_embeddings.weight,
            "position": embeddings.position_embeddings.weight,
            "token_type": embeddings.token_type_embeddings.weight[0],
            "norm_weight": embeddings.LayerNorm.weight,
            "norm_bias": embeddings.LayerNorm.bias,
        }.items():
            self.register_buffer(name, tensor.detach(), persistent=False)
        # RoBERTa numbers positions after its padding index and skips pads; BERT counts from 0.
        padding_idx = getattr(embeddings, "padding_idx", None)
        self.position_offset = -1 if padding_idx is None else int(padding_idx)
        self.eps = float(config.layer_norm_eps)
        self.layers = nn.ModuleList(
            _Layer(layer, self.eps, fused_gelu, packed) for layer in encoder.encoder.layer
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        downs: list[torch.Tensor],
        ups: list[torch.Tensor],
        segments: list[int],
        gelu_adapter: bool,
        bucket_spans: list[_Span],
        linear_rows: int,
        picks: list[int],
        picked_segments: list[int],
        picked_linear_rows: int,
    ) -> torch.Tensor:
        """Last hidden states (zeros at the pads), computed over the real tokens only: the
        Linear layers never see padding, only zero rows up to `linear_rows` when that is more
        than the real tokens (see `linear_rows`). `downs` ([hidden, r] each) and `ups`
        ([r, hidden]) list the adapter weights site by site (two sites per layer, attention
        then FFN) as `PackedAdapters` describes; `segments` counts each adapter's real tokens
        when the rows are grouped by adapter, and is empty otherwise. `bucket_spans` places the
        attention buckets, runs of consecutive rows (see `bucket_spans`). Non-empty `picks`
        (one packed token position per row) asks for those tokens' last hidden states only:
        the last layer runs on them alone (`_Layer.forward_selected`, with `picked_segments`
        and `picked_linear_rows` in place of `segments` and `linear_rows`), and every other
        position of the result is zero."""
        batch, length = input_ids.size(0), input_ids.size(1)
        if self.position_offset < 0:
            positions = torch.arange(length, device=input_ids.device).expand(batch, length)
        else:
            real = input_ids.ne(self.position_offset).to(torch.long)
            positions = torch.cumsum(real, dim=1) * real + self.position_offset
        index = attention_mask.reshape(-1).nonzero().squeeze(1)
        ids = input_ids.reshape(-1).index_select(0, index)
        hidden = F.embedding(ids, self.word) + self.token_type
        hidden = hidden + F.embedding(positions.reshape(-1).index_select(0, index), self.position)
        hidden = F.layer_norm(hidden, [hidden.size(-1)], self.norm_weight, self.norm_bias, self.eps)
        buckets = _buckets(attention_mask, bucket_spans)
        per_layer = len(downs) // len(self.layers)
        last = len(self.layers) - 1
        start = 0
        for number, layer in enumerate(self.layers):
            end = start + per_layer
            if number == last and len(picks) > 0:
                chosen = torch.tensor(picks, device=input_ids.device)
                hidden = layer.forward_selected(
                    hidden,
                    chosen,
                    buckets,
                    downs[start:end],
                    ups[start:end],
                    picked_segments,
                    gelu_adapter,
                    linear_rows,
                    picked_linear_rows,
                )
                return _pad(hidden, index.index_select(0, chosen), batch, length)
            hidden = layer(
                hidden,
                index,
                batch,
                length,
                buckets,
                downs[start:end],
                ups[start:end],
                segments,
                gelu_adapter,
                linear_rows,
            )
            start = end
        return _pad(hidden, index, batch, length)


def _buckets(attention_mask: torch.Tensor, spans: list[_Span]) -> list[_Bucket]:
    """Each bucket's token span, its tokens' positions when its rows are padded to its own
    longest row (real tokens moved to the front of each row), and its key mask."""
    lengths = attention_mask.sum(dim=1)
    buckets: list[_Bucket] = []
    for span in spans:
        first_row, rows, first_token, tokens, longest = span[0], span[1], span[2], span[3], span[4]
        row_lengths = lengths.narrow(0, first_row, rows)
        positions = torch.arange(longest, device=attention_mask.device)
        keep = positions.unsqueeze(0) < row_lengths.unsqueeze(1)
        index = keep.reshape(-1).nonzero().squeeze(1)
        buckets.append(([first_token, tokens], index, keep[:, None, None, :]))
    return buckets


class ScriptedEncoder:
    """The scripted forward of one encoder, and the packing of a batch's adapters for it."""

    def __init__(
        self,
        encoder: nn.Module,
        sites: Sequence[AdapterSite],
        fused_gelu: bool | None = None,
        packed_weights: bool | None = None,
    ) -> None:
        """`fused_gelu` (default: `fuses_gelu_by_default`) runs each FFN's first Linear and its
        GELU as one oneDNN call (see `_Layer._ffn_in`); `packed_weights` (default:
        `packs_weights_by_default`) runs every Linear through oneDNN on a copy of its weight
        prepacked once (see `packs_weights_by_default`)."""
        layers = sorted({site.layer for site in sites})
        self.site_keys = [AdapterSite(layer, place).key for layer in layers for place in PLACEMENTS]
        self.hidden_size = int(encoder.config.hidden_size)
        weight = encoder.embeddings.word_embeddings.weight
        self.round_linear_rows = weight.dtype != torch.float32 and weight.device.type == "cpu"
        self._zeros: dict[tuple, torch.Tensor] = {}
        self.fused_gelu = fuses_gelu_by_default(weight) if fused_gelu is None else fused_gelu
        self.packed_weights = (
            packs_weights_by_default(weight) if packed_weights is None else packed_weights
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated")
            module = _Encoder(encoder, self.fused_gelu, self.packed_weights)
            self.module = torch.jit.script(module.eval())
        self._warm_up(encoder.embeddings.word_embeddings.weight.device)

    def _warm_up(self, device: torch.device) -> None:
        """TorchScript profiles a function's first two runs before it optimises it; run them
        here (one adapter, and several gathered and grouped; one attention bucket and two), not
        in the first requests."""
        input_ids = torch.ones(2, 4, dtype=torch.long, device=device)
        attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], device=device)
        down = torch.zeros(self.hidden_size, 1, device=device)
        sites = len(self.site_keys)
        single = PackedAdapters([down] * sites, [down.T] * sites, False, [])
        several = ([down] * 2 * sites, [down.T] * 2 * sites, False)
        gathered = PackedAdapters(*several, [])
        grouped = PackedAdapters(*several, [1, 1], order=[1, 0])
        with torch.no_grad():
            for packed in (single, gathered, grouped) * 2:
                self(input_ids, attention_mask, packed)
                self(input_ids, attention_mask, packed, outputs=[3, 0])
                spans = bucket_spans([4, 2], [1, 1])
                self.module(input_ids, attention_mask, *several[:2], [], False, spans, 8, [], [], 0)
                self.module(
                    input_ids, attention_mask, *several[:2], [], False, spans, 8, [3, 5], [], 8
                )

    def pack(
        self, row_adapters: Sequence[AdapterSet], lengths: Sequence[int], mode: str = "gather"
    ) -> PackedAdapters | None:
        """The rows' adapter weights as `PackedAdapters` (zeros where a set has no adapter at a
        site) for the `gather` or `group` computation. Only references: nothing is copied
        until a gathered forward stacks one site. `group` orders the rows by set inside each
        attention bucket, which `lengths` (real tokens per row) decide. None when the sets
        differ in bottleneck or kind, which only the eager grouped path handles."""
        check_apply_mode(mode)
        sets = list({id(adapters): adapters for adapters in row_adapters}.values())
        shapes = {(a.config.bottleneck, a.config.kind) for a in sets}
        if len(shapes) != 1:
            return None
        bottleneck, kind = shapes.pop()
        first = next(iter(sets[0].parameters()), None)
        if first is None:
            return None
        zero_down = self._zero_adapter(bottleneck, first.dtype, first.device)
        zero_up = zero_down.T
        gelu = kind == "houlsby"
        if mode != "group" or len(sets) == 1:
            listed = sets if len(sets) == 1 else list(row_adapters)
            downs = [a.down.get(k, zero_down) for k in self.site_keys for a in listed]
            ups = [a.up.get(k, zero_up) for k in self.site_keys for a in listed]
            return PackedAdapters(downs, ups, gelu, [])
        set_of_row = {id(a): i for i, a in enumerate(sets)}
        groups = [set_of_row[id(a)] for a in row_adapters]
        bucket_rows = attention_buckets(lengths)
        order: list[int] = []
        runs: list[int] = []  # the set of each run of consecutive rows with one set
        group_rows: list[int] = []
        start = 0
        for rows in bucket_rows:
            by_set = sorted(range(start, start + rows), key=groups.__getitem__)
            for run, members in itertools.groupby(by_set, key=groups.__getitem__):
                members = list(members)
                order += members
                runs.append(run)
                group_rows.append(len(members))
            start += rows
        downs = [sets[run].down.get(k, zero_down) for k in self.site_keys for run in runs]
        ups = [sets[run].up.get(k, zero_up) for k in self.site_keys for run in runs]
        in_order = order == list(range(len(order)))
        return PackedAdapters(
            downs, ups, gelu, group_rows, None if in_order else order, bucket_rows
        )

    def _zero_adapter(
        self, bottleneck: int, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """The stand-in for a site a set has no adapter at, made once per shape (read only)."""
        key = (bottleneck, dtype, device)
        if key not in self._zeros:
            self._zeros[key] = torch.zeros(self.hidden_size, bottleneck, dtype=dtype, device=device)
        return self._zeros[key]

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        packed: PackedAdapters,
        lengths: Sequence[int] | None = None,
        outputs: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Last hidden states in fp32 (heads keep full precision under a bf16 encoder), in the
        caller's row order. `lengths` (real tokens per row) spares reading them off the mask.

        `outputs` (one position per row) asks for those positions only, e.g. a prompt's mask
        token for an MLM head: the last layer then runs its query, FFN and adapters on one
        token per row instead of all of them, and every other position is zero."""
        lengths = attention_mask.sum(dim=1).tolist() if lengths is None else list(lengths)
        wanted = None if outputs is None else list(outputs)
        picks = None
        if packed.order is not None:
            picks = torch.tensor(packed.order, device=input_ids.device)
            input_ids = input_ids.index_select(0, picks)
            attention_mask = attention_mask.index_select(0, picks)
            lengths = [lengths[row] for row in packed.order]
            wanted = None if wanted is None else [wanted[row] for row in packed.order]
        segments = _token_counts(lengths, packed.group_rows) if packed.group_rows else []
        tokens = [] if wanted is None else _packed_positions(lengths, wanted)
        hidden = self.module(
            input_ids,
            attention_mask,
            packed.downs,
            packed.ups,
            segments,
            packed.gelu,
            bucket_spans(lengths, packed.bucket_rows or attention_buckets(lengths)),
            linear_rows(sum(lengths)) if self.round_linear_rows else 0,
            tokens,
            list(packed.group_rows) if tokens else [],
            linear_rows(len(tokens)) if self.round_linear_rows and tokens else 0,
        )
        if picks is not None:
            hidden = hidden.index_select(0, torch.argsort(picks))
        return hidden.float() if hidden.dtype != torch.float32 else hidden


def fuses_gelu_by_default(weight: torch.Tensor) -> bool:
    """Whether an encoder with this weight runs its FFN's first Linear and GELU as one oneDNN
    call: only a bf16 encoder on a CPU whose oneDNN has bf16 kernels (AVX512-BF16 or AMX).

    Why: there the fused call cost 4-7 % less CPU per 32-row batch (AMX Xeon, commit
    `fbf9b26`). An fp32 Linear runs through MKL instead, which beat oneDNN's fp32 kernel: on an
    AVX2 CPU the fused forward cost 8-13 % more (`python -m benchmarks.adapter_apply`, commit
    `d21fd23`, benchmarks/RESULTS.md). And on a CPU without those kernels oneDNN has no fused
    bf16 call at all ("could not create a primitive descriptor"); bf16 then runs emulated,
    unfused."""
    return weight.dtype == torch.bfloat16 and onednn_supports(weight)


def packs_weights_by_default(weight: torch.Tensor) -> bool:
    """Whether an encoder with this weight runs its Linear layers on weights prepacked once
    into oneDNN's blocked layout: where it fuses the GELU (`fuses_gelu_by_default`).

    Why: a bf16 Linear on plain weights reorders them into that layout on every call. On the
    AMX Xeon a prepacked [1536, 384] Linear took 38-44 against 91 us of CPU for 10 rows and
    0.95-0.99 against 1.2 ms for 1,000 (scratch microbenchmark, commit `4a7ba56`). The copies
    cost memory: one more copy of the encoder's Linear weights (MiniLM in bf16: ~21 MB);
    the eager forward keeps the plain ones."""
    return fuses_gelu_by_default(weight)


def onednn_supports(weight: torch.Tensor) -> bool:
    """Whether oneDNN runs the Linear calls of an encoder with this weight (the fused Linear +
    GELU, prepacked weights): on the CPU, and for bf16 only with oneDNN's bf16 kernels."""
    return (
        weight.device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and (weight.dtype != torch.bfloat16 or torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def linear_rows(tokens: int) -> int:
    """`tokens` rounded up to one of a few sizes: at most 1/8 more (and at least 8 rows), so
    about eight sizes per doubling.

    Why: on the CPU, oneDNN runs bf16 Linear layers and keeps state for every input shape it
    has seen. With one shape per batch's exact token count, a bf16 forward's RSS grew about
    1.6 MB per batch over varied batches (+486 MB in 300; fp32 through MKL: +11 MB), and it
    kept growing until the cache held about a thousand shapes. Rounded, a workload meets only
    a few dozen shapes: +69 MB, levelling off (`python -m benchmarks.forward_memory`)."""
    step = max(8, 1 << max(0, tokens.bit_length() - 4))
    return -(-tokens // step) * step


def _packed_positions(lengths: list[int], positions: list[int]) -> list[int]:
    """Where each row's token at `positions[row]` sits among the rows' packed real tokens."""
    packed, start = [], 0
    for length, position in zip(lengths, positions, strict=True):
        if not 0 <= position < length:
            raise ValueError(f"output position {position} is outside a row of {length} tokens")
        packed.append(start + position)
        start += length
    return packed


def _token_counts(lengths: list[int], group_rows: list[int]) -> list[int]:
    """Real tokens per group of consecutive rows."""
    counts, start = [], 0
    for rows in group_rows:
        counts.append(sum(lengths[start : start + rows]))
        start += rows
    return counts


def bucket_spans(lengths: list[int], bucket_rows: list[int]) -> list[_Span]:
    """Each bucket of consecutive rows as [first row, rows, first token, tokens, longest row],
    from the lengths the caller has in Python (no tensor read, no device sync)."""
    spans, first_row, first_token = [], 0, 0
    for rows, tokens in zip(bucket_rows, _token_counts(lengths, bucket_rows), strict=True):
        longest = max(lengths[first_row : first_row + rows])
        spans.append([first_row, rows, first_token, tokens, longest])
        first_row += rows
        first_token += tokens
    return spans


# Cost model of one attention bucket, in units of one padded query-key pair: rows * longest^2
# pairs, plus BUCKET_COST for the bucket's own calls (three pads, attention, one unpad per
# layer). Measured on MiniLM (2 CPU threads): splitting a 31-row batch of sst-2 sentences
# (9-39 tokens) this way cut its attention time by about half.
BUCKET_COST = 4096


def attention_buckets(lengths: Sequence[int]) -> list[int]:
    """Rows per attention bucket: the split of the rows, in order, into consecutive runs that
    minimises padded attention work plus a fixed cost per run (exact, by dynamic programming;
    a batch is at most a few dozen rows)."""
    count = len(lengths)
    best = [0] * (count + 1)
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        longest, best[end] = 0, -1
        for start in range(end - 1, -1, -1):
            longest = max(longest, lengths[start])
            cost = best[start] + (end - start) * longest * longest + BUCKET_COST
            if best[end] < 0 or cost < best[end]:
                best[end], cut[end] = cost, start
    rows = []
    end = count
    while end > 0:
        rows.append(end - cut[end])
        end = cut[end]
    return rows[::-1]


def scriptable(encoder: nn.Module, sites: Sequence[AdapterSite]) -> bool:
    """Whether the scripted forward reproduces `encoder` exactly."""
    config = encoder.config
    quantised = any(
        type(module).__module__.startswith("torch.ao.nn.quantized") for module in encoder.modules()
    )
    return (
        type(encoder).__name__ in SUPPORTED_MODELS
        and getattr(config, "hidden_act", None) == "gelu"
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not quantised
        and {site.place for site in sites} == set(PLACEMENTS)
    )


def script_encoder(
    encoder: nn.Module, sites: Sequence[AdapterSite], prepack: bool = True
) -> ScriptedEncoder | None:
    """The scripted forward for `encoder`, or None for one it does not reproduce exactly.
    `prepack` False keeps every Linear on its plain weight (no copy; see
    `packs_weights_by_default`)."""
    if not scriptable(encoder, sites):
        return None
    return ScriptedEncoder(encoder, sites, packed_weights=None if prepack else False)


def _dense(module: nn.Module) -> nn.Linear:
    """The Linear inside an adapter-wrapped `dense` (or the plain one)."""
    dense = module.dense
    return getattr(dense, "base", dense)
