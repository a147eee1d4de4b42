"""Tokenizing the three row shapes: which positions carry loss, counted by hand.

The tokenizer gives one token per word (tests/support/tiny_models.py), so every expected label list
below is written out position by position.
"""

import pytest
from support.tiny_models import word_tokenizer

from loraledger.schemas.errors import InvalidInput
from loraledger.trainer import data

X = data.IGNORE
WORDS = ["the", "court", "held", "that", "it", "applies", "hi", "there", "hello", "friend"]
WORDS += ["and", "again", "thanks", "bye"]


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return word_tokenizer(WORDS)


def ids(tokenizer, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    return [tokenizer.convert_tokens_to_ids(token) for token in text.split()]


def test_text_rows_carry_loss_everywhere(tokenizer) -> None:  # type: ignore[no-untyped-def]
    [sequence] = data.tokenize([{"text": "the court held"}], tokenizer)
    expected = ids(tokenizer, "<s> the court held </s>")
    assert sequence.input_ids == expected
    assert sequence.labels == expected


def test_text_field_option(tokenizer) -> None:  # type: ignore[no-untyped-def]
    [sequence] = data.tokenize([{"body": "it applies"}], tokenizer, text_field="body")
    assert sequence.input_ids == ids(tokenizer, "<s> it applies </s>")


def test_prompt_completion_masks_the_prompt(tokenizer) -> None:  # type: ignore[no-untyped-def]
    [sequence] = data.tokenize([{"prompt": "the court held", "completion": "that it applies"}], tokenizer)
    assert sequence.input_ids == ids(tokenizer, "<s> the court held that it applies </s>")
    #                    <s> the court held  that it applies </s>
    assert sequence.labels == [X, X, X, X, *ids(tokenizer, "that it applies </s>")]
    # and after collation, the loss covers exactly those four positions
    batch = data.collate_rows([[sequence]], pad_id=0)
    labelled = (batch["labels"][0] != X).nonzero().flatten().tolist()
    assert labelled == [4, 5, 6, 7]


def test_chat_masks_everything_but_the_assistant_replies(tokenizer) -> None:  # type: ignore[no-untyped-def]
    record = {
        "messages": [
            {"role": "system", "content": "bye"},
            {"role": "user", "content": "hi there"},
            {"role": "assistant", "content": "hello friend"},
            {"role": "user", "content": "and again"},
            {"role": "assistant", "content": "thanks"},
        ]
    }
    [sequence] = data.tokenize([record], tokenizer)
    rendered = (
        "<s> <| system |> bye </s> <| user |> hi there </s> <| assistant |> hello friend </s> "
        "<| user |> and again </s> <| assistant |> thanks </s>"
    )
    assert sequence.input_ids == ids(tokenizer, rendered)
    labelled = [position for position, label in enumerate(sequence.labels) if label != X]
    # positions: <s>0 <|1 system2 |>3 bye4 </s>5 <|6 user7 |>8 hi9 there10 </s>11 <|12 assistant13 |>14
    # hello15 friend16 </s>17 <|18 user19 |>20 and21 again22 </s>23 <|24 assistant25 |>26 thanks27 </s>28
    assert labelled == [15, 16, 17, 27, 28]
    assert [sequence.labels[p] for p in labelled] == ids(tokenizer, "hello friend </s> thanks </s>")


def test_chat_without_a_template_is_a_clear_error() -> None:
    bare = word_tokenizer(WORDS, chat_template=None)
    record = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bye"}]}
    with pytest.raises(InvalidInput, match=r"record 0 is a chat .* no chat template: pass --chat-template"):
        data.tokenize([record], bare)
    # ... and --chat-template supplies one
    template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    [sequence] = data.tokenize([record], bare, chat_template=template)
    assert sequence.input_ids == ids(bare, "hi bye")
    assert sequence.labels == [X, *ids(bare, "bye")]


def test_long_prompt_windows_keep_every_completion_token(tokenizer) -> None:  # type: ignore[no-untyped-def]
    record = {"prompt": " ".join(["the court held"] * 30), "completion": "that it applies"}
    [sequence] = data.tokenize([record], tokenizer)
    assert len(sequence) == 1 + 90 + 4
    windows, extra = data.split_windows([sequence], max_length=32)
    assert extra == 3  # 95 tokens: windows start at 0, 31, 62, 93 (one shared token at each boundary)
    # the prompt-only windows are left out; the last two hold every completion token as a target once
    assert [len(w) for w in windows] == [32, 2]
    targets = [t for w in windows for t in w.labels[1:] if t != X]
    assert targets == ids(tokenizer, "that it applies </s>")
