"""The TorchScript modules of the scripted serving forward: one per encoder layer and one for
the whole encoder, sharing the encoder's frozen tensors (no copy, but for prepacked weights).

They compute exactly what the eager encoder with a `MixedAdapterPlan` computes: `h + f(h A) B`
after each attention-output and FFN-output dense, per row. The Linear layers run on the real
tokens only (a bf16 encoder on the CPU on their count rounded up, see
`list_core.serving.bucketing.linear_rows`); attention pads them back into rows in buckets of
consecutive rows, each padded only to its own longest row (`attention_buckets`), so a batch's
short rows do not pay for its longest one. A batch's adapters apply in one of two ways
(`list_core.serving.adapter_packing` lays their weights out):
- `gather`: each row's weights are stacked and one bmm runs over the padded rows;
- `group`: within each attention bucket the rows are ordered by adapter, so each adapter's
  tokens there are one contiguous slice of the packed tokens, and one matmul per slice runs with
  the adapter's own tensors. No weights are copied and no adapter work is done on pads; the
  order changes only inside a bucket, so no row is padded further than under `gather`.
A bf16 encoder on a CPU with oneDNN bf16 kernels runs the FFN's first Linear and its GELU as
one oneDNN call, and every Linear on a copy of its weight prepacked once into oneDNN's layout
(`fuses_gelu_by_default` and `packs_weights_by_default` in `list_core.serving.capabilities`).
Asked for one token per row (`outputs`, an MLM head's mask tokens), the last layer runs its
query, attention output, adapters, norms and FFN on those tokens alone
(`LayerModule.forward_selected`).
"""

import torch
from torch import nn
from torch.nn import functional as F

from list_core.serving.bucketing import Span
from list_core.serving.packed_tokens import add_adapters, pad_rows, pad_tokens
from list_core.sites import unwrapped

# One attention bucket: ([first token, tokens], positions of its tokens in [rows, longest]
# flattened, the [rows, 1, 1, longest] key mask).
_Bucket = tuple[list[int], torch.Tensor, torch.Tensor]
# The weights of a layer's Linear layers, which `packs_weights_by_default` prepacks.
_LINEAR_WEIGHTS = (
    "q_weight",
    "k_weight",
    "v_weight",
    "attn_out_weight",
    "ffn_in_weight",
    "ffn_out_weight",
)


class LayerModule(nn.Module):
    """One transformer layer's frozen weights (shared views) and its forward."""

    def __init__(self, layer: nn.Module, eps: float, fused_gelu: bool, packed: bool) -> None:
        super().__init__()
        layer = unwrapped(layer)
        attention, intermediate, output = layer.attention, layer.intermediate, layer.output
        query, key, value = (
            unwrapped(getattr(attention.self, name)) for name in ("query", "key", "value")
        )
        attn_out = unwrapped(attention.output.dense)
        attn_norm = unwrapped(attention.output.LayerNorm)
        ffn_in, ffn_out = unwrapped(intermediate.dense), unwrapped(output.dense)
        ffn_norm = unwrapped(output.LayerNorm)
        tensors = {
            "q_weight": query.weight,
            "q_bias": query.bias,
            "k_weight": key.weight,
            "k_bias": key.bias,
            "v_weight": value.weight,
            "v_bias": value.bias,
            "attn_out_weight": attn_out.weight,
            "attn_out_bias": attn_out.bias,
            "attn_norm_weight": attn_norm.weight,
            "attn_norm_bias": attn_norm.bias,
            "ffn_in_weight": ffn_in.weight,
            "ffn_in_bias": ffn_in.bias,
            "ffn_out_weight": ffn_out.weight,
            "ffn_out_bias": ffn_out.bias,
            "ffn_norm_weight": ffn_norm.weight,
            "ffn_norm_bias": ffn_norm.bias,
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
        rows = pad_rows(hidden, linear_rows)
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
            pad_rows(context, linear_rows), self.attn_out_weight, self.attn_out_bias
        ).narrow(0, 0, tokens)
        per_site = len(downs) // 2
        attended = add_adapters(
            attended, index, batch, length, downs[:per_site], ups[:per_site], segments, gelu_adapter
        )
        attended = F.layer_norm(
            attended + residual, [width], self.attn_norm_weight, self.attn_norm_bias, self.eps
        )
        inner = self._ffn_in(pad_rows(attended, linear_rows))
        out = self._linear(inner, self.ffn_out_weight, self.ffn_out_bias).narrow(0, 0, tokens)
        out = add_adapters(
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
        padded = pad_tokens(packed.narrow(0, spans[0], spans[1]), index, rows, length)
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
        rows = pad_rows(hidden, linear_rows)
        key = self._linear(rows, self.k_weight, self.k_bias)
        value = self._linear(rows, self.v_weight, self.v_bias)
        picked = hidden.index_select(0, picks)
        count = picked.size(0)
        query = self._linear(
            pad_rows(picked, picked_linear_rows), self.q_weight, self.q_bias
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


class EncoderModule(nn.Module):
    """The whole encoder: the embeddings of the real tokens, then every `LayerModule`."""

    def __init__(self, encoder: nn.Module, fused_gelu: bool, packed: bool) -> None:
        super().__init__()
        config = encoder.config
        embeddings = encoder.embeddings
        for name, tensor in {
            "word": unwrapped(embeddings.word_embeddings).weight,
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
            LayerModule(layer, self.eps, fused_gelu, packed) for layer in encoder.encoder.layer
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        downs: list[torch.Tensor],
        ups: list[torch.Tensor],
        segments: list[int],
        gelu_adapter: bool,
        bucket_spans: list[Span],
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
        the last layer runs on them alone (`LayerModule.forward_selected`, with `picked_segments`
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
                return pad_tokens(hidden, index.index_select(0, chosen), batch, length)
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
        return pad_tokens(hidden, index, batch, length)


def _buckets(attention_mask: torch.Tensor, spans: list[Span]) -> list[_Bucket]:
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
