"""Tiny RoBERTa and BERT backbones built in-process: random weights, a tokenizer trained here.

They are saved to a folder and loaded back through the same `from_pretrained` path as real
models, so tests exercise the real loading code without any download.
"""

import random
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import (
    AddedToken,
    Tokenizer,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from tokenizers import decoders as tokenizer_decoders
from torch import nn
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertModel,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForMaskedLM,
)

POSITIVE_WORDS = ["great", "good", "superb", "lovely", "brilliant", "fun", "wonderful", "nice"]
NEGATIVE_WORDS = ["terrible", "bad", "awful", "boring", "dull", "poor", "horrible", "weak"]
FILLER_WORDS = [
    "the",
    "movie",
    "film",
    "plot",
    "actor",
    "story",
    "was",
    "is",
    "a",
    "and",
    "with",
    "scene",
    "music",
    "ending",
    "very",
    "quite",
    "really",
    "it",
    "this",
    "that",
    "of",
    "in",
    "show",
    "about",
    "for",
    "on",
    "seemed",
    "felt",
    "our",
    "cast",
    "director",
    "script",
]
EXTRA_WORDS = ["okay", "objective", "subjective", "yes", "no", "maybe", "sports", "science"]


def corpus(size: int = 3000, seed: int = 0) -> list[str]:
    """Sentences over a fixed vocabulary, so every label word becomes one token."""
    rng = random.Random(seed)
    vocabulary = POSITIVE_WORDS + NEGATIVE_WORDS + FILLER_WORDS + EXTRA_WORDS
    lines = [" ".join(rng.choices(vocabulary, k=rng.randint(4, 14))) for _ in range(size)]
    lines += [f"It was {word} ." for word in vocabulary]
    return lines


def build_tiny_roberta(folder: Path, hidden: int = 32, layers: int = 2) -> Path:
    """Byte-level BPE tokenizer + RobertaForMaskedLM with random weights."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizer_decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>"))
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=AddedToken("<mask>", lstrip=True),
    )
    config = RobertaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=130,
        pad_token_id=wrapped.pad_token_id,
        bos_token_id=wrapped.bos_token_id,
        eos_token_id=wrapped.eos_token_id,
    )
    return _save(_seeded(lambda: RobertaForMaskedLM(config)), wrapped, folder)


def build_tiny_bert(
    folder: Path, hidden: int = 32, layers: int = 2, mlm_head: bool = True, pooler: bool = False
) -> Path:
    """WordPiece tokenizer + BertForMaskedLM (or a bare BertModel, with a pooler like a
    sentence-embedding checkpoint such as all-MiniLM-L6-v2 if asked) with random weights."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = tokenizer_decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    tokenizer.train_from_iterator(corpus(), trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
        pad_token="[PAD]",
        mask_token="[MASK]",
    )
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        pad_token_id=wrapped.pad_token_id,
    )
    model = _seeded(
        lambda: BertForMaskedLM(config) if mlm_head else BertModel(config, add_pooling_layer=pooler)
    )
    return _save(model, wrapped, folder)


def _seeded(build: Callable[[], nn.Module]) -> nn.Module:
    """The same random weights whichever tests ran first: built from a fixed seed, without
    touching the global generator the tests themselves use."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build()


def _save(model, tokenizer, folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
