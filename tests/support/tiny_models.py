"""Tiny, randomly initialised base models and hand-made tokenizers, saved as Hugging Face folders.

Built in a fraction of a second (no pre-training), for tests that need a loadable base with a
particular property: a tokenizer whose token positions are known word by word, no EOS or pad token,
a Llama or GPT-2 architecture. Tests that need a model that has learnt something use the built-in
bases (the ``tiny_base`` / ``tiny_gpt2_base`` fixtures) instead.
"""

from pathlib import Path
from typing import Literal

from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
# The built-in models' template shape: role header, content, EOS.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def word_tokenizer(
    words: list[str],
    *,
    bos: str | None = BOS,
    eos: str | None = EOS,
    chat_template: str | None = CHAT_TEMPLATE,
) -> PreTrainedTokenizerFast:
    """One token per word or punctuation run, so a test can count label positions by hand.

    Ids: the special tokens first (``<unk>`` = 0, then BOS, EOS if given), then ``words`` in order,
    plus the pieces of chat role headers (``<|``, ``|>``, role names).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    specials = ["<unk>", *(token for token in (bos, eos) if token)]
    pieces = ["<|", "|>", "user", "assistant", "system"]
    vocabulary: dict[str, int] = {}
    for token in [*specials, *pieces, *words]:
        vocabulary.setdefault(token, len(vocabulary))
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocabulary[bos])]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        unk_token="<unk>",
        chat_template=chat_template,
        model_max_length=512,
    )


def bpe_tokenizer(texts: list[str], *, vocab_size: int = 400, eos: bool = True) -> PreTrainedTokenizerFast:
    """Byte-level BPE learnt from ``texts`` (well under a second); no pad token, like most LLMs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<unk>", BOS, *([EOS] if eos else [])]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS if eos else None,
        unk_token="<unk>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )


def save_base(
    folder: Path,
    tokenizer: PreTrainedTokenizerFast,
    *,
    architecture: Literal["llama", "gpt2"] = "llama",
    seed: int = 0,
) -> Path:
    """A randomly initialised causal LM sized to the tokenizer, saved with it (safetensors)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    shared = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if architecture == "llama":
        model = LlamaForCausalLM(
            LlamaConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=4,
                max_position_embeddings=512,
                **shared,
            )
        )
    else:
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=512, **shared))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def random_adapter(
    base: Path,
    folder: Path,
    seed: int,
    *,
    rslora: bool = False,
    r: int = 4,
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
) -> Path:
    """A LoRA adapter with non-zero A and B (a fresh one has B = 0, which would prove nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules), use_rslora=rslora)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.normal_(0, 0.3)
    peft_model.save_pretrained(folder)
    return folder
