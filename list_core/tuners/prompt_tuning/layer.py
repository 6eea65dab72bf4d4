"""Prompt tuning's per-row computation: the row's virtual tokens' input embeddings replaced by
the soft prompt (the same front replacement prefixes make at each layer's keys and values)."""

from list_core.tuners.prefix.layer import with_front

__all__ = ["with_front"]
