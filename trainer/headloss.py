"""The training loss computed together with the output layer, one chunk of positions at a time.

A causal LM's own forward turns every position's hidden state into logits, a (positions x vocabulary)
fp32 tensor, before its loss takes the log-softmax; autograd keeps both until backward. At 4,096
positions of SmolLM2's 49,152-token vocabulary that is 805 MB each, and on a CPU the passes over them
cost as much as the output layer's matmul. Here the logits of one chunk at a time become that chunk's
loss and, already in the forward pass, its gradient with respect to the hidden states; backward only
scales that stored (positions x hidden) gradient. This is Liger-Kernel's fused linear cross-entropy
in plain torch ops, because Liger's kernels are Triton and GPU-only.
Positions without a label (prompt turns, document starts, padding) get no logits at all.

It serves only models whose forward is known to be "decoder -> lm_head -> the causal-LM loss" with a
frozen, bias-free ``nn.Linear`` head: anything else (a LoRA-adapted or quantized head, logit scaling or
soft-capping, another loss) keeps the model's own forward.
"""

import logging
from contextlib import AbstractContextManager
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.loss.loss_utils import LOSS_MAPPING

from loraledger.trainer.data import IGNORE

# Model types whose *ForCausalLM.forward is exactly `self.model(...)`, `self.lm_head(hidden_states)`,
# `self.loss_function(...)`: tests/trainer/test_headloss.py reads each one's source to hold that true.
FUSABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "olmo2", "smollm3"})
# Each chunk multiplies its positions by the whole output layer, twice, so chunks of a few positions
# re-read the layer many times. Measured on one CPU thread, 2,048 positions, forward and backward:
# SmolLM2's head (49,152 x 576) 6.18 s unfused, 5.63 / 4.27 / 3.79 / 3.71 s in chunks of 32 / 128 /
# 512 / 2,048 positions; builtin:tiny's (3,072 x 128) 87 ms unfused, 56 ms in chunks of 256 or 512
# and 61 ms in one chunk of 2,048. Liger's rule (chunk logits the size of the hidden states) picks 32
# positions for SmolLM2: right for a GPU's memory, slow on a CPU.
CHUNK_POSITIONS = 512
CHUNK_BYTES = 256 * 2**20  # a chunk's fp32 logits: 512 positions up to a vocabulary of 131,072
log = logging.getLogger("loraledger.trainer")


def chunk_positions(vocabulary: int) -> int:
    """Positions per chunk: CHUNK_POSITIONS, halved until the chunk's fp32 logits fit in CHUNK_BYTES."""
    positions = CHUNK_POSITIONS
    while positions > 1 and positions * vocabulary * 4 > CHUNK_BYTES:
        positions //= 2
    return positions


class _LinearCrossEntropy(torch.autograd.Function):
    """sum over labelled positions of -log softmax(hidden @ weight.T)[target], divided by ``items``."""

    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        labelled = (targets != IGNORE).nonzero().squeeze(1)
        states, wanted = hidden.index_select(0, labelled), targets.index_select(0, labelled)
        grad_states = torch.empty_like(states)
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        step = chunk_positions(weight.shape[0])
        for start in range(0, len(labelled), step):
            part, target = states[start : start + step], wanted[start : start + step]
            logits = (part @ weight.T).float()  # the model's loss upcasts its logits the same way
            norm = torch.logsumexp(logits, dim=-1)
            loss += (norm - logits.gather(1, target[:, None]).squeeze(1)).sum()
            # d loss / d logits = softmax - one-hot, computed in place of the logits
            probabilities = logits.sub_(norm[:, None]).exp_()
            probabilities[torch.arange(len(target), device=target.device), target] -= 1
            grad_states[start : start + step] = probabilities.to(weight.dtype) @ weight
        grad_hidden = torch.zeros_like(hidden).index_copy_(0, labelled, grad_states / items)
        ctx.save_for_backward(grad_hidden)
        return loss / items

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (grad_hidden,) = ctx.saved_tensors
        return grad_hidden * grad_loss.to(grad_hidden.dtype), None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, items: torch.Tensor | int
) -> torch.Tensor:
    """The causal-LM loss of ``labels`` ([rows, positions], unshifted, -100 for none) on the logits
    ``hidden @ weight.T``, summed and divided by ``items``: what transformers' ``ForCausalLMLoss``
    returns given ``num_items_in_batch``. Gradients flow to ``hidden`` only (the head is frozen)."""
    targets = torch.nn.functional.pad(labels, (0, 1), value=IGNORE)[..., 1:].reshape(-1).to(hidden.device)
    denominator = torch.as_tensor(items, dtype=torch.float32, device=hidden.device)
    flat = hidden.reshape(-1, hidden.shape[-1])
    loss: torch.Tensor = _LinearCrossEntropy.apply(flat, weight, targets, denominator)  # type: ignore[no-untyped-call]
    return loss


class HeadLoss:
    """The training loss of a PEFT-wrapped model, its decoder run directly and its head fused with the
    loss (see the module's docstring)."""

    def __init__(self, decoder: torch.nn.Module, head: torch.nn.Linear) -> None:
        self.decoder, self.head = decoder, head

    def __call__(
        self, inputs: dict[str, Any], items: torch.Tensor | int, autocast: AbstractContextManager[Any]
    ) -> torch.Tensor:
        features = {key: value for key, value in inputs.items() if key != "labels"}
        with autocast:  # the autocast Accelerate wraps the model's forward in, which this one bypasses
            hidden = self.decoder(**features, use_cache=False).last_hidden_state
            return linear_cross_entropy(hidden, self.head.weight, inputs["labels"], items)


def head_loss_for(model: Any) -> HeadLoss | None:
    """A ``HeadLoss`` for ``model`` (a ``PeftModel``), or None where its own forward must compute the loss."""
    base: PreTrainedModel = model.get_base_model()
    head = base.get_output_embeddings()
    reason = None
    if base.config.model_type not in FUSABLE_MODEL_TYPES:
        reason = f"model type {base.config.model_type!r} is not one whose forward is known"
    elif type(head) is not torch.nn.Linear:  # a LoRA layer, a quantized one: not a plain matmul
        reason = f"its output layer is a {type(head).__name__}"
    elif head.bias is not None or head.weight.requires_grad:
        reason = "its output layer has a bias or is trained"
    elif base.loss_function is not LOSS_MAPPING["ForCausalLM"]:
        reason = "it has its own loss function"
    if reason is not None:
        log.info("loss: the model's own forward (%s)", reason)
        return None
    log.info("loss: computed with the output layer, a chunk of positions at a time")
    return HeadLoss(base.get_decoder(), head)
