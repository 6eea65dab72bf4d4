import pytest

from list_core.backbone import load_backbone
from list_core.field_error import FieldError
from list_core.prompts import (
    PlainEncoder,
    PromptEncoder,
    TaskSpec,
    label_sentences,
    label_word_ids,
)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{text} It was .", "exactly one {mask}, found 0"),
        ("{text} {mask} and {mask}", "exactly one {mask}, found 2"),
        ("It was {mask} .", "{text} exactly once"),
        ("{text} {label} {mask}", "unknown placeholder {label}"),
        ("   ", "non-empty"),
    ],
)
def test_bad_templates_are_rejected_with_the_reason(template, message):
    with pytest.raises(FieldError) as error:
        TaskSpec.create(["a", "b"], template)
    assert error.value.field == "template"
    assert message in error.value.message


def test_label_validation():
    with pytest.raises(FieldError, match="at least 2 labels"):
        TaskSpec.create(["only"])
    with pytest.raises(FieldError, match="unique"):
        TaskSpec.create(["a", "a"])
    with pytest.raises(FieldError, match="unknown labels"):
        TaskSpec.create(["a", "b"], label_words={"c": "great"})


def test_multi_token_label_word_is_named(tiny_roberta_path):
    tokenizer = load_backbone(str(tiny_roberta_path), "cpu").tokenizer
    spec = TaskSpec.create(["neg", "pos"], label_words={"neg": "terrible", "pos": "zqxjvwk"})
    with pytest.raises(FieldError) as error:
        label_word_ids(tokenizer, spec)
    assert error.value.field == "label_words.pos"
    assert "'zqxjvwk'" in error.value.message


def test_roberta_label_words_use_leading_space_form(tiny_roberta_path):
    tokenizer = load_backbone(str(tiny_roberta_path), "cpu").tokenizer
    spec = TaskSpec.create(["neg", "pos"], label_words={"neg": "terrible", "pos": "great"})
    tokens = tokenizer.convert_ids_to_tokens(label_word_ids(tokenizer, spec))
    assert tokens == ["Ġterrible", "Ġgreat"]


@pytest.mark.parametrize("fixture", ["tiny_roberta_path", "tiny_bert_path"])
def test_truncation_keeps_template_and_mask(fixture, request):
    tokenizer = load_backbone(str(request.getfixturevalue(fixture)), "cpu").tokenizer
    encoder = PromptEncoder(tokenizer, "{text} It was {mask} .", max_length=16)
    short, long = encoder.encode(["great movie", "the movie " * 50], [None, None])
    assert len(long.input_ids) == 16
    assert long.input_ids[long.mask_index] == tokenizer.mask_token_id
    assert long.input_ids[-4:] == short.input_ids[-4:]
    assert short.input_ids.count(tokenizer.mask_token_id) == 1


def test_pair_template_truncates_the_longer_text(tiny_bert_path):
    tokenizer = load_backbone(str(tiny_bert_path), "cpu").tokenizer
    encoder = PromptEncoder(tokenizer, "{text} ? {mask} , {text_b}", max_length=20)
    (row,) = encoder.encode(["the plot " * 30], ["good"])
    tokens = tokenizer.convert_ids_to_tokens(row.input_ids)
    assert len(tokens) == 20
    assert tokens[-2:] == ["good", "[SEP]"]
    assert tokens[row.mask_index] == "[MASK]"


def test_prompt_matches_whole_string_tokenization(tiny_bert_path):
    tokenizer = load_backbone(str(tiny_bert_path), "cpu").tokenizer
    encoder = PromptEncoder(tokenizer, "{text} It was {mask} .", max_length=64)
    (row,) = encoder.encode(["the movie was fun"], [None])
    assert row.input_ids == tokenizer("the movie was fun It was [MASK] .")["input_ids"]


def test_template_too_long_for_max_length(tiny_bert_path):
    tokenizer = load_backbone(str(tiny_bert_path), "cpu").tokenizer
    with pytest.raises(FieldError, match="no room"):
        PromptEncoder(tokenizer, "{text} " + "the movie " * 20 + "{mask}", max_length=16)


def test_plain_encoder_and_label_sentences(tiny_bert_path):
    tokenizer = load_backbone(str(tiny_bert_path), "cpu").tokenizer
    (row,) = PlainEncoder(tokenizer, 8).encode(["the movie " * 20], [None])
    assert len(row.input_ids) == 8 and row.mask_index == -1
    spec = TaskSpec.create(["neg", "pos"], label_words={"neg": "terrible", "pos": "great"})
    assert label_sentences(spec) == ["It was terrible .", "It was great ."]
