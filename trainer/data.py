"""From records to packed micro-batches: tokenize, split long documents into windows, pack.

Three row shapes: ``text`` (loss on every token), ``prompt`` + ``completion`` (loss on the completion
only) and chat ``messages`` (the tokenizer's chat template; loss on assistant turns only).

Nothing is truncated: a sequence longer than ``max_length`` becomes several windows. Windows are packed
first-fit-decreasing into rows of at most ``max_length`` tokens, with ``position_ids`` restarting at
each sequence: transformers derives block-diagonal attention masks from them (SDPA and eager attention;
FlashAttention uses them as varlen boundaries), so every sequence sees only itself; on CPU the recipe
attends each sequence on its own instead (trainer/attention.py), as FlashAttention's varlen does. Rows,
not one long flattened row, because SDPA on CPU materialises a mask quadratic in the row length. A
micro-batch is ``batch_tokens // max_length`` rows, padded to its longest row; first-fit-decreasing
leaves little padding (the share is measured and reported).
"""

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loraledger.schemas.errors import InvalidInput
from loraledger.schemas.jobs import DataStats

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORE = -100


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize(
    records: Sequence[dict[str, Any]],
    tokenizer: "PreTrainedTokenizerBase",
    *,
    text_field: str = "text",
    chat_template: str | None = None,
) -> list[Tokenized]:
    """One full-length sequence per record, with labels masking what carries no loss."""
    sequences = []
    for index, record in enumerate(records):
        if isinstance(record.get(text_field), str):
            sequences.append(_plain(tokenizer, record[text_field]))
        elif "prompt" in record and "completion" in record:
            sequences.append(_prompt_completion(tokenizer, record["prompt"], record["completion"]))
        elif "messages" in record:
            sequences.append(_chat(tokenizer, record["messages"], chat_template, index))
        else:
            raise InvalidInput(f"record {index} has no {text_field!r}, prompt/completion or messages")
    return sequences


def _encode(tokenizer: "PreTrainedTokenizerBase", text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])


def _with_eos(tokenizer: "PreTrainedTokenizerBase", ids: list[int]) -> list[int]:
    eos = tokenizer.eos_token_id
    return [*ids, eos] if eos is not None and (not ids or ids[-1] != eos) else ids


def _plain(tokenizer: "PreTrainedTokenizerBase", text: str) -> Tokenized:
    ids = _with_eos(tokenizer, _encode(tokenizer, text, special=True))
    return Tokenized(ids, list(ids))


def _prompt_completion(tokenizer: "PreTrainedTokenizerBase", prompt: str, completion: str) -> Tokenized:
    prompt_ids = _encode(tokenizer, prompt, special=True)
    completion_ids = _with_eos(tokenizer, _encode(tokenizer, completion, special=False))
    return Tokenized(prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids)


def _chat(
    tokenizer: "PreTrainedTokenizerBase", messages: list[dict[str, str]], template: str | None, index: int
) -> Tokenized:
    template = template or tokenizer.chat_template
    if not template:
        raise InvalidInput(
            f"record {index} is a chat ('messages') but the tokenizer has no chat template: "
            "pass --chat-template (a Jinja template, or a file holding one)"
        )

    def render(upto: int, *, generation_prompt: bool = False) -> str:
        return str(
            tokenizer.apply_chat_template(
                messages[:upto],
                chat_template=template,
                tokenize=False,
                add_generation_prompt=generation_prompt,
            )
        )

    # Character spans of the assistant replies, from the growth of the rendering turn by turn
    # (templates render a prefix of a conversation as a prefix of its text). A reply starts after the
    # generation prompt (the role header the model is given, not asked to write).
    spans, previous = [], ""
    for turn, message in enumerate(messages, start=1):
        text = render(turn)
        if not text.startswith(previous):
            raise InvalidInput(
                f"record {index}: the chat template does not render a conversation's first turns as the "
                "beginning of its text, so assistant replies cannot be located; pass --chat-template"
            )
        if message.get("role") == "assistant":
            header = render(turn - 1, generation_prompt=True)
            start = len(header) if text.startswith(header) and len(header) >= len(previous) else len(previous)
            spans.append((start, len(text)))
        previous = text
    try:
        encoded = tokenizer(previous, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    except NotImplementedError:  # slow (Python) tokenizers cannot map tokens back to characters
        raise InvalidInput(
            f"record {index} is a chat ('messages'): locating the assistant replies needs a fast "
            f"tokenizer (a tokenizer.json), and {type(tokenizer).__name__} is a slow one"
        ) from None
    ids = list(encoded["input_ids"])
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE
        for token, (begin, _) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return Tokenized(ids, labels)


def split_windows(sequences: Sequence[Tokenized], max_length: int) -> tuple[list[Tokenized], int]:
    """Cut sequences longer than ``max_length`` into windows; returns (windows, extra windows).

    Consecutive windows share one token: a window's first token is never a target inside it (nothing
    precedes it), so it is also the last token of the window before, where it is one. Every token
    after a sequence's first is trained exactly once. Windows without a single labelled token (e.g. the
    middle of a very long prompt) are kept out: they would cost compute and teach nothing.
    """
    windows: list[Tokenized] = []
    extra = 0
    for sequence in sequences:
        pieces = [
            Tokenized(
                sequence.input_ids[start : start + max_length], sequence.labels[start : start + max_length]
            )
            for start in window_starts(len(sequence), max_length)
        ]
        extra += len(pieces) - 1
        windows.extend(piece for piece in pieces if any(label != IGNORE for label in piece.labels[1:]))
    return windows, extra


def window_starts(length: int, max_length: int) -> list[int]:
    starts = [0]
    while starts[-1] + max_length < length:
        starts.append(starts[-1] + max_length - 1)
    return starts


def pack(lengths: Sequence[int], capacity: int, *, seed: int) -> list[list[int]]:
    """First-fit-decreasing rows of sequence indices, each holding at most ``capacity`` tokens, shuffled."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for index in order:
        length = lengths[index]
        for slot, free in enumerate(room):
            if length <= free:
                rows[slot].append(index)
                room[slot] -= length
                break
        else:
            rows.append([index])
            room.append(capacity - length)
    random.Random(seed).shuffle(rows)
    return rows


def collate_rows(rows: Sequence[Sequence[Tokenized]], pad_id: int) -> dict[str, "torch.Tensor"]:
    """A [rows, longest row] batch; positions restart at each sequence and labels mask each sequence's
    first token (nothing is predicted across a document boundary). Row-end padding continues the last
    sequence's positions with masked labels: causal attention never lets earlier tokens see it."""
    import torch

    width = max(sum(len(sequence) for sequence in row) for row in rows)
    input_ids, labels, positions = [], [], []
    for row in rows:
        row_ids: list[int] = []
        row_labels: list[int] = []
        row_positions: list[int] = []
        for sequence in row:
            row_ids += sequence.input_ids
            row_labels += [IGNORE, *sequence.labels[1:]]
            row_positions += range(len(sequence))
        padding = width - len(row_ids)
        last = row_positions[-1]
        input_ids.append(row_ids + [pad_id] * padding)
        labels.append(row_labels + [IGNORE] * padding)
        positions.append(row_positions + list(range(last + 1, last + 1 + padding)))
    return {
        "input_ids": torch.tensor(input_ids),
        "labels": torch.tensor(labels),
        "position_ids": torch.tensor(positions),
    }


def micro_batches(rows: list[list[int]], rows_per_batch: int) -> list[list[list[int]]]:
    return [rows[start : start + rows_per_batch] for start in range(0, len(rows), rows_per_batch)]


def batch_rows(
    rows: list[list[int]], lengths: Sequence[int], rows_per_batch: int, *, seed: int
) -> list[list[list[int]]]:
    """Micro-batches of rows of similar fill, in a seeded random order.

    First-fit-decreasing leaves nearly all rows full and a few short ones at the end; batching those
    together keeps a short row from padding a batch of full ones."""
    fill = [sum(lengths[i] for i in row) for row in rows]
    by_fill = [rows[r] for r in sorted(range(len(rows)), key=lambda r: (-fill[r], r))]
    batches = micro_batches(by_fill, rows_per_batch)
    random.Random(seed).shuffle(batches)
    return batches


def padding_share(windows: Sequence[Tokenized], batches: Sequence[Sequence[Sequence[int]]]) -> float:
    computed = real = 0
    for batch in batches:
        lengths = [sum(len(windows[i]) for i in row) for row in batch]
        computed += max(lengths) * len(lengths)
        real += sum(lengths)
    return 1 - real / computed if computed else 0.0


class PackedDataset:
    """A torch-style dataset whose items are whole micro-batches (several packed rows each)."""

    def __init__(self, windows: list[Tokenized], batches: list[list[list[int]]]) -> None:
        self.windows = windows
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"rows": [[self.windows[i] for i in row] for row in self.batches[index]]}


class Collator:
    """Trainer collator: every item is already a micro-batch (per-device batch size 1)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, "torch.Tensor"]:
        return collate_rows([row for item in items for row in item["rows"]], self.pad_id)


def prepare(
    records: Sequence[dict[str, Any]],
    tokenizer: "PreTrainedTokenizerBase",
    *,
    max_length: int,
    batch_tokens: int,
    seed: int,
    text_field: str = "text",
    chat_template: str | None = None,
    source_rows: Sequence[int] = (),
) -> tuple[PackedDataset, DataStats]:
    """Tokenize, window and pack ``records``; ``source_rows`` (rows per data source, in order) asks for
    the tokens of each source too."""
    sequences = tokenize(records, tokenizer, text_field=text_field, chat_template=chat_template)
    if sum(source_rows) not in (0, len(sequences)):
        raise ValueError(f"source_rows add up to {sum(source_rows)}, not the {len(sequences)} records")
    bounds = [0, *itertools.accumulate(source_rows)]
    source_tokens = [sum(len(s) for s in sequences[a:b]) for a, b in itertools.pairwise(bounds)]
    windows, extra = split_windows(sequences, max_length)
    if not windows:
        raise InvalidInput("the dataset has no tokens to train on (every completion is empty)")
    lengths = [len(w) for w in windows]
    rows = pack(lengths, max_length, seed=seed)
    batches = batch_rows(rows, lengths, max(1, batch_tokens // max_length), seed=seed)
    tokens = sum(lengths)
    stats = DataStats(
        rows=len(records),
        sequences=len(windows),
        windows_split=extra,
        windows_skipped=len(sequences) + extra - len(windows),
        tokens=tokens,
        trained_tokens=sum(sum(1 for label in w.labels[1:] if label != IGNORE) for w in windows),
        micro_batches=len(batches),
        padding_share=padding_share(windows, batches),
        source_tokens=source_tokens,
    )
    return PackedDataset(windows, batches), stats
