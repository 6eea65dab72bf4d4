"""Rows with virtual tokens: slots in front of each row's own tokens that a prompt or prefix
tuner fills at every forward, so the encoder attends to them but no head reads them.

They go in front (not after) so each real token keeps the position it would have after a
prompt of that length: what PEFT computes for the same tuner, which the export tests check.
"""

from transformers import PreTrainedTokenizerBase

from list_core.prompts import EncodedRow, PlainEncoder, PromptEncoder


def slot_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id a slot carries: any non-pad token (RoBERTa numbers positions by non-pad ids); its
    embedding is never used unchanged."""
    return tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.mask_token_id


class VirtualTokenEncoder:
    """`inner`'s rows with `count` slots in front; `inner` leaves room for them."""

    def __init__(
        self, inner: PromptEncoder | PlainEncoder, count: int, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        self.inner = inner
        self.count = count
        self.slot_id = slot_token_id(tokenizer)

    @property
    def batch_key(self) -> tuple:
        return ("virtual", self.count, *self.inner.batch_key)

    def encode(self, texts: list[str], texts_b: list[str | None]) -> list[EncodedRow]:
        slots = [self.slot_id] * self.count
        return [
            EncodedRow(
                slots + row.input_ids,
                row.mask_index + self.count if row.mask_index >= 0 else -1,
                self.count,
            )
            for row in self.inner.encode(texts, texts_b)
        ]


def sample_token_ids(tokenizer: PreTrainedTokenizerBase, count: int, generator) -> list[int]:
    """`count` ids drawn from the vocabulary's ordinary tokens: soft prompts and prefixes start
    from real words' embeddings or activations, as Lester et al. and Li & Liang found best."""
    import torch

    special = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(len(tokenizer)) if i not in special]
    picks = torch.randint(len(ordinary), (count,), generator=generator).tolist()
    return [ordinary[i] for i in picks]


def check_room(field: str, count: int, backbone, max_length: int) -> None:
    """Refuse more virtual tokens than leave room for text within the task's `max_length`
    (itself within the backbone's positions), naming the field."""
    from list_core.field_error import FieldError

    room = min(backbone.max_positions - 2, max_length) - 8
    if not 1 <= count <= room:
        raise FieldError(
            f"hyperparameters.{field}",
            f"must be between 1 and {room} tokens (max_length {max_length} leaves room for text)",
        )
