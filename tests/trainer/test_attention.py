"""Attention one document at a time: the same numbers as SDPA under the block-diagonal mask."""

import random

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from loraledger.trainer import attention, data


def tokenized(length: int, rng: random.Random) -> data.Tokenized:
    ids = [rng.randrange(3, 250) for _ in range(length)]
    return data.Tokenized(ids, list(ids))


def packed_batch(rows: list[list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    rng = random.Random(seed)
    return data.collate_rows([[tokenized(n, rng) for n in row] for row in rows], pad_id=0)


# A full-width window, short documents of several length buckets, one-token documents, row-end padding.
ROWS = [[64], [30, 20, 9], [5, 40, 3], [16, 16, 16], [1, 2, 33]]


class Heads(torch.nn.Module):
    """What the attention function reads from a model's attention module."""

    num_key_value_groups = 1
    is_causal = True


def test_each_document_attends_to_itself_only() -> None:
    torch.manual_seed(0)
    positions = packed_batch(ROWS)["position_ids"]
    rows, width = positions.shape
    query, key, value = (torch.randn(rows, 4, width, 8) for _ in range(3))
    document = (torch.diff(positions, dim=1, prepend=positions[:, :1] - 1) != 1).cumsum(1)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    mask = ((document[:, :, None] == document[:, None, :]) & causal)[:, None]
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)

    got, _ = attention.packed_attention_forward(Heads(), query, key, value, None, position_ids=positions)

    assert got.shape == (rows, width, 4, 8)
    assert torch.allclose(got, expected.transpose(1, 2), atol=1e-6)


def test_documents_are_batched_by_length() -> None:
    layout = attention._layout(packed_batch(ROWS)["position_ids"])
    # Row-end padding joins the row's last document: 30, 20, 9+5, 5, 3+16, 16, 16, 16+16, 1, 2 tokens
    # share the bucket up to 32; 64, 40 and 33+28 the one up to 64.
    assert sorted(tuple(b.index.shape) for b in layout.buckets) == [(3, 64), (10, 32)]
    assert sum(int(b.valid.sum()) for b in layout.buckets) == len(ROWS) * 64
    assert layout.order is not None  # two buckets: the outputs are put back in row order


def test_rows_of_one_document_are_plain_causal_rows() -> None:
    torch.manual_seed(0)
    positions = packed_batch([[64], [50], [64]])["position_ids"]  # the short row ends in padding
    assert attention._layout(positions).buckets == []
    query, key, value = (torch.randn(3, 2, 64, 8) for _ in range(3))
    got, _ = attention.packed_attention_forward(Heads(), query, key, value, None, position_ids=positions)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True)
    assert torch.allclose(got, expected.transpose(1, 2), atol=1e-6)


def llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention: keys and values are repeated per group
        max_position_embeddings=128,
        use_cache=False,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)


def loss_and_gradients(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    loss = loss.detach()
    return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_training_step_matches_sdpa_with_the_packed_mask() -> None:
    model = llama().train()
    batch = packed_batch(ROWS)
    loss, gradients = loss_and_gradients(model, batch)

    with attention.packed_attention(model) as by_document:
        assert by_document
        assert model.config._attn_implementation == attention.NAME
        packed_loss, packed_gradients = loss_and_gradients(model, batch)
    assert model.config._attn_implementation == "sdpa"  # restored

    assert abs(packed_loss - loss) < 1e-5
    for reference, got in zip(gradients, packed_gradients, strict=True):
        assert torch.allclose(got, reference, atol=1e-5, rtol=1e-4)


def test_inference_and_unpacked_calls_use_the_model_s_own_attention() -> None:
    model = llama().eval()
    ids = torch.randint(3, 250, (2, 12))
    expected = model(input_ids=ids).logits
    with attention.packed_attention(model):
        assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-6)


def test_arguments_it_does_not_know_go_to_transformers_sdpa() -> None:
    torch.manual_seed(0)
    positions = packed_batch(ROWS)["position_ids"]
    query, key, value = (torch.randn(len(ROWS), 2, 64, 8) for _ in range(3))
    causal = torch.ones(64, 64, dtype=torch.bool).tril()[None, None]  # one document per row, say
    # a sliding window of 4 is not something attention per document does: the given mask is used
    got, _ = attention.packed_attention_forward(
        Heads(), query, key, value, causal, position_ids=positions, sliding_window=4
    )
    plain = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=causal)
    assert torch.allclose(got, plain.transpose(1, 2), atol=1e-6)


def test_models_without_sdpa_keep_their_attention() -> None:
    model = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, attn_implementation="eager")
    )
    with attention.packed_attention(model) as by_document:
        assert not by_document
        assert model.config._attn_implementation == "eager"
