"""Prompt templates, label words (the verbalizer) and turning texts into token ids.

A template holds `{text}`, optionally `{text_b}`, and exactly one `{mask}`. Label words must be
one token each (RoBERTa: the leading-space form, e.g. `Ġgreat`) so the MLM head can score them
at the mask. Truncation only ever shortens the texts: the template and the mask always survive.
"""

import re
from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from list_core.field_error import FieldError

DEFAULT_TEMPLATE = "{text} It was {mask} ."
_PLACEHOLDER = re.compile(r"\{(text|text_b|mask)\}")
_ANY_BRACES = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class TaskSpec:
    """What a task classifies into and how it is prompted."""

    labels: tuple[str, ...]
    template: str = DEFAULT_TEMPLATE
    label_words: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        labels: list[str] | tuple[str, ...],
        template: str | None = None,
        label_words: dict[str, str] | None = None,
    ) -> "TaskSpec":
        """Validate and fill defaults: the default template, label words = the label names."""
        labels = tuple(labels)
        if len(labels) < 2:
            raise FieldError("labels", "a task needs at least 2 labels")
        if len(set(labels)) != len(labels):
            raise FieldError("labels", "labels must be unique")
        template = DEFAULT_TEMPLATE if template is None else template
        validate_template(template)
        words = dict(label_words or {})
        unknown = sorted(set(words) - set(labels))
        if unknown:
            raise FieldError("label_words", f"words given for unknown labels {unknown}")
        for label in labels:
            words.setdefault(label, label)
        return cls(labels=labels, template=template, label_words=words)

    @property
    def uses_text_b(self) -> bool:
        return "{text_b}" in self.template

    def words(self) -> list[str]:
        return [self.label_words[label] for label in self.labels]

    def as_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "template": self.template,
            "label_words": dict(self.label_words),
        }


def validate_template(template: str) -> None:
    """Raise `FieldError` unless the template has `{text}` and exactly one `{mask}`."""
    if not isinstance(template, str) or not template.strip():
        raise FieldError("template", "must be a non-empty string")
    unknown = [p for p in _ANY_BRACES.findall(template) if not _PLACEHOLDER.fullmatch(p)]
    if unknown:
        raise FieldError(
            "template", f"unknown placeholder {unknown[0]}; use {{text}}, {{text_b}} and {{mask}}"
        )
    if template.count("{text}") != 1:
        raise FieldError("template", "must contain {text} exactly once")
    if template.count("{text_b}") > 1:
        raise FieldError("template", "may contain {text_b} at most once")
    masks = template.count("{mask}")
    if masks != 1:
        raise FieldError("template", f"must contain exactly one {{mask}}, found {masks}")


def label_word_ids(tokenizer: PreTrainedTokenizerBase, spec: TaskSpec) -> list[int]:
    """Token id of each label word as it appears after a space; one token each or an error."""
    ids = []
    for label in spec.labels:
        word = spec.label_words[label]
        pieces = tokenizer.encode(" " + word.strip(), add_special_tokens=False)
        if not word.strip() or len(pieces) != 1:
            shown = tokenizer.convert_ids_to_tokens(pieces)
            raise FieldError(
                f"label_words.{label}",
                f"label word {word!r} is {len(pieces)} tokens {shown} for this backbone; "
                "each label word must be exactly one token",
            )
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise FieldError("label_words", "two labels map to the same token")
    return ids


def label_sentences(spec: TaskSpec) -> list[str]:
    """The template with no text and each label word at the mask, e.g. `It was great .`."""
    base = spec.template.replace("{text_b}", "").replace("{text}", "")
    return [" ".join(base.replace("{mask}", word).split()) for word in spec.words()]


@dataclass(frozen=True)
class EncodedRow:
    """Token ids with special tokens; `mask_index` is the mask's position (or -1).
    `virtual_tokens` counts slots at the front that a tuner fills (soft prompts, prefixes):
    the encoder attends to them, heads never read them."""

    input_ids: list[int]
    mask_index: int
    virtual_tokens: int = 0


class PromptEncoder:
    """Turns (text, text_b) rows into token ids under one template, cutting only the texts."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template: str, max_length: int) -> None:
        validate_template(template)
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        self.parts: list[tuple[str, list[int]]] = []
        pieces = _PLACEHOLDER.split(template)
        for index, piece in enumerate(pieces):
            if index % 2:
                self.parts.append((piece, []))
                continue
            mask_follows = index + 1 < len(pieces) and pieces[index + 1] == "mask"
            text = piece.rstrip() if mask_follows else piece
            if not self.parts:
                text = text.lstrip()
            if text.strip():
                self.parts.append(("literal", tokenizer.encode(text, add_special_tokens=False)))
        fixed = sum(len(ids) for kind, ids in self.parts if kind == "literal")
        self.budget = max_length - fixed - 1 - self._special_count()
        if self.budget < 1:
            raise FieldError("template", f"leaves no room for text within {max_length} tokens")

    def _special_count(self) -> int:
        return 2 if self.tokenizer.sep_token_id is not None else 1

    @property
    def batch_key(self) -> tuple:
        """Encoders with equal keys encode every row alike (same tokenizer, template and
        length limit), so their tasks' rows can share one `encode` call."""
        return ("prompt", id(self.tokenizer), self.template, self.max_length)

    def encode(self, texts: list[str], texts_b: list[str | None]) -> list[EncodedRow]:
        """Encode a batch; texts are tokenized in one tokenizer call."""
        text_ids = self._tokenize([self._spaced(t, "text") for t in texts])
        has_b = any(part == "text_b" for part, _ in self.parts)
        b_ids = self._tokenize([self._spaced(t or "", "text_b") for t in texts_b]) if has_b else []
        rows = []
        for index, ids in enumerate(text_ids):
            second = b_ids[index] if has_b else []
            ids, second = _truncate_pair(ids, second, self.budget)
            rows.append(self._assemble(ids, second))
        return rows

    def _spaced(self, text: str, slot: str) -> str:
        """Texts after a literal get a leading space so BPE tokenizes them as whole words."""
        position = next(i for i, (kind, _) in enumerate(self.parts) if kind == slot)
        return text if position == 0 else " " + text.strip()

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _assemble(self, text_ids: list[int], text_b_ids: list[int]) -> EncodedRow:
        tokenizer = self.tokenizer
        ids = [
            tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        ]
        mask_index = -1
        for kind, part_ids in self.parts:
            if kind == "literal":
                ids.extend(part_ids)
            elif kind == "text":
                ids.extend(text_ids)
            elif kind == "text_b":
                ids.extend(text_b_ids)
            else:
                mask_index = len(ids)
                ids.append(tokenizer.mask_token_id)
        if tokenizer.sep_token_id is not None:
            ids.append(tokenizer.sep_token_id)
        return EncodedRow(ids, mask_index)


class PlainEncoder:
    """Texts (or pairs) as the tokenizer joins them, for the similarity and classic heads."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def batch_key(self) -> tuple:
        """Encoders with equal keys encode every row alike (same tokenizer and length limit),
        so their tasks' rows can share one `encode` call."""
        return ("plain", id(self.tokenizer), self.max_length)

    def encode(self, texts: list[str], texts_b: list[str | None]) -> list[EncodedRow]:
        pairs = any(t is not None for t in texts_b)
        encoded = self.tokenizer(
            texts,
            [t or "" for t in texts_b] if pairs else None,
            truncation=True,
            max_length=self.max_length,
        )["input_ids"]
        return [EncodedRow(ids, -1) for ids in encoded]


def _truncate_pair(first: list[int], second: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Cut the longer text first, token by token from its end, until both fit the budget."""
    first, second = list(first), list(second)
    while len(first) + len(second) > budget:
        if len(first) >= len(second):
            first.pop()
        else:
            second.pop()
    return first, second
