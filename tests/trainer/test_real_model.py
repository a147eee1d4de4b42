"""A real pretrained model as the base: SmolLM2-135M-Instruct from a Q4_1 GGUF file.

Everything else is proven on builtin:tiny; these tests check that nothing in the path assumes it: the
GGUF file as ``--base``, its own tokenizer and chat template, continuing a version, merging, exporting.
Each trains a few optimizer steps at max_length 128 (about 30-70 tokens/s on 2 cores in fp32).
"""

import json
from pathlib import Path

import pytest
import torch

import loraledger
from loraledger.fingerprints import fingerprint
from loraledger.schemas.specs import EvalSpec
from loraledger.trainer import data, evaluate, gguf, models

pytestmark = pytest.mark.slow

SHORT = {"max_length": 128, "batch_tokens": 256, "epochs": 1.0, "r": 4, "alpha": 8.0, "learning_rate": 1e-3}


def chat(question: str, answer: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


FIRST = [
    chat("Which license is MIT?", "The MIT license is a short permissive license."),
    chat("Can I sell MIT code?", "Yes: keep the copyright notice and the permission notice."),
    chat("Is Apache-2.0 permissive?", "Yes, and it grants a patent license too."),
]
SECOND = [
    chat("Is the GPL permissive?", "No: the GPL is a copyleft license."),
    chat("What does LGPL allow?", "Linking from code under other licenses, with conditions."),
]


def test_a_gguf_file_or_its_folder_is_a_base_fingerprinted_by_the_file(
    smollm2_gguf: Path, home: Path
) -> None:
    settings = loraledger.open().settings
    by_file = models.resolve_base(str(smollm2_gguf), cache_dir=settings.cache_dir)
    by_folder = models.resolve_base(str(smollm2_gguf.parent), cache_dir=settings.cache_dir)
    assert by_file == by_folder
    assert by_file.model_id == str(smollm2_gguf.resolve())
    assert by_file.source_format == "GGUF Q4_1"
    assert (by_file.path / "model.safetensors").is_file()  # the dequantized copy everything loads
    record = fingerprint(by_file, settings.cache_dir)
    assert record.weights_digest == gguf.file_sha256(smollm2_gguf)
    assert record.source_format == "GGUF Q4_1"
    assert record.same_model(fingerprint(by_folder, settings.cache_dir))


def test_chat_rows_use_its_own_template_and_train_only_the_replies(smollm2_gguf: Path, home: Path) -> None:
    settings = loraledger.open().settings
    source = models.resolve_base(str(smollm2_gguf), cache_dir=settings.cache_dir)
    tokenizer, padding = models.load_tokenizer(source)
    assert padding == "pad '<|im_end|>' (the tokenizer's own)"
    [sequence] = data.tokenize([FIRST[1]], tokenizer)
    text = tokenizer.decode(sequence.input_ids)
    # SmolLM2's template adds its own system turn when a conversation has none.
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<|im_start|>user\nCan I sell MIT code?<|im_end|>\n<|im_start|>assistant\n" in text
    trained = tokenizer.decode([token for token in sequence.labels if token != data.IGNORE])
    assert trained == "Yes: keep the copyright notice and the permission notice.<|im_end|>\n"


def test_general_text_scores_lower_nll_than_builtin_tiny(
    smollm2_gguf: Path, tiny_base: Path, samples: Path, home: Path
) -> None:
    from loraledger.schemas.jobs import BaseSource

    settings = loraledger.open().settings
    rows = [json.loads(line) for line in (samples / "general" / "retention-eval.jsonl").open()][:3]
    spec = EvalSpec(max_length=128, stride=128)
    scores = {}
    for name, source in (
        ("smollm2", models.resolve_base(str(smollm2_gguf), cache_dir=settings.cache_dir)),
        ("tiny", BaseSource(model_id="builtin:tiny", path=tiny_base)),
    ):
        scores[name] = evaluate.score_sets(source, None, {"general": rows}, spec, device="cpu")["general"]
    text_bytes = sum(len(row["text"].encode()) for row in rows)
    per_byte = {name: score.nll * score.tokens / text_bytes for name, score in scores.items()}
    # Per token, although SmolLM2's tokens are longer (harder to predict each), and per byte.
    assert scores["smollm2"].nll < scores["tiny"].nll
    assert per_byte["smollm2"] < 0.8 * per_byte["tiny"]


def test_train_continue_merge_and_export_a_gguf_base(smollm2_gguf: Path, tmp_path: Path, home: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from loraledger.modelcard import build_card
    from loraledger.trainer.merge import logits, probe_batch

    ledger = loraledger.open()
    first = ledger.train(
        "chat", write_rows(tmp_path / "a.jsonl", FIRST), base=str(smollm2_gguf), run_eval=False, **SHORT
    )
    base = first.version.base
    assert (base.model_id, base.source_format) == (str(smollm2_gguf.resolve()), "GGUF Q4_1")
    assert base.weights_digest == gguf.file_sha256(smollm2_gguf)
    assert first.outcome.steps >= 1 and first.outcome.final_loss is not None
    expected_precision = models.describe_precision(models.compute_dtype("auto", "cpu"), "cpu")
    assert first.version.training["precision_used"] == expected_precision == first.outcome.precision

    second = ledger.train("chat", write_rows(tmp_path / "b.jsonl", SECOND), run_eval=False, **SHORT)
    assert (second.version.ref, second.version.parent) == ("chat@2", "chat@1")
    assert second.version.base.same_model(base)

    # Merge: saved as safetensors, the logits of adapter-on-base within 1e-4 of their scale (a trained
    # 30-layer model's fp32 logits reach ~20: reordered sums differ by a few 1e-4 in absolute terms).
    merged = ledger.merge("chat@2", tmp_path / "merged")
    assert "model.safetensors" in merged.outcome.files
    tolerance = merged.outcome.tolerance
    assert 1e-4 <= tolerance <= 1e-4 * 100  # relative to logits of this model's size
    assert merged.outcome.max_logit_diff <= tolerance
    assert merged.outcome.saved_max_logit_diff <= tolerance
    loaded = ledger.load("chat@2", device="cpu")
    ids = probe_batch(loaded.model)
    on_base = logits(loaded.model, ids)
    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), dtype=torch.float32).eval()
    assert float((logits(reloaded, ids) - on_base).abs().max()) <= tolerance
    del reloaded

    # Export: a plain PEFT folder that loads on the GGUF file as transformers reads it, same logits.
    exported = ledger.export("chat@2", tmp_path / "export")
    plain_base = AutoModelForCausalLM.from_pretrained(
        str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name, dtype=torch.float32
    )
    plain = PeftModel.from_pretrained(plain_base, str(exported.outcome.adapter_dir)).eval()
    assert float((logits(plain, ids) - on_base).abs().max()) <= 1e-5

    # The card names the file and its quantization, and loads the base the way it exists.
    card = build_card(ledger.registry, second.version, repo_id="someone/chat", relation="adapter")
    assert "GGUF file `SmolLM2-135M-Instruct.Q4_1.gguf` (quantization Q4_1)" in card
    assert 'gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"' in card
    assert "| GGUF Q4_1 |" in card
