"""Where per-task parameters can act inside a BERT- or RoBERTa-style encoder: the named places
that `list_core.adapters` wraps once, so any tuner can read or change what flows through them.

A site's key is what a tuner's tensors and plans name it by: `layer3_query`, `layer3_ffn`,
`embeddings`, or `layer3` for a whole transformer layer. `attention` and `ffn` are the two
bottleneck-adapter places (after the attention-output and FFN-output dense); their keys are the
names saved adapters have always used.
"""

import re
from dataclasses import dataclass

# The bottleneck adapters' places (saved adapters name their tensors by these).
PLACEMENTS = ("attention", "ffn")
# Every Linear or LayerNorm place inside a layer, in the order a layer runs them.
LAYER_PLACES = (
    "query",
    "key",
    "value",
    "attention",
    "attention_norm",
    "intermediate",
    "ffn",
    "ffn_norm",
)
# The Linear places of a layer (LoRA targets; BitFit trains their biases).
LINEAR_PLACES = ("query", "key", "value", "attention", "intermediate", "ffn")
EMBEDDINGS_KEY = "embeddings"
WHOLE_LAYER = "layer"

_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)(\.|$)")
_PLACE_SUFFIXES = (
    ("attention.self.query", "query"),
    ("attention.self.key", "key"),
    ("attention.self.value", "value"),
    ("attention.output.dense", "attention"),
    ("attention.output.LayerNorm", "attention_norm"),
    ("intermediate.dense", "intermediate"),
)
_FFN_OUT = re.compile(r"layer\.\d+\.output\.dense$")
_FFN_NORM = re.compile(r"layer\.\d+\.output\.LayerNorm$")
_WHOLE = re.compile(r"(?:^|\.)layer\.\d+$")


@dataclass(frozen=True)
class AdapterSite:
    """One place in the encoder: a layer index (-1 for the embeddings) and its place name."""

    layer: int
    place: str

    @property
    def key(self) -> str:
        if self.place == EMBEDDINGS_KEY:
            return EMBEDDINGS_KEY
        if self.place == WHOLE_LAYER:
            return f"layer{self.layer}"
        return f"layer{self.layer}_{self.place}"


def site_key(layer: int, place: str) -> str:
    return AdapterSite(layer, place).key


def site_for(name: str) -> AdapterSite | None:
    """The site of the encoder module called `name` (as `named_modules` names it), or None."""
    if name.endswith("embeddings.word_embeddings"):
        return AdapterSite(-1, EMBEDDINGS_KEY)
    match = _LAYER.search(name)
    if match is None:
        return None
    layer = int(match.group(1))
    if _WHOLE.search(name):
        return AdapterSite(layer, WHOLE_LAYER)
    for suffix, place in _PLACE_SUFFIXES:
        if name.endswith(suffix):
            return AdapterSite(layer, place)
    if _FFN_OUT.search(name):
        return AdapterSite(layer, "ffn")
    if _FFN_NORM.search(name):
        return AdapterSite(layer, "ffn_norm")
    return None


def unwrapped(module):
    """The module a site wrapper holds (or the module itself when it is not wrapped): what the
    scripted forward and other readers of the frozen weights need."""
    return getattr(module, "base", module)
