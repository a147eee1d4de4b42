"""`adapters import`, `stack`, `merge` and `export` end to end through the CLI, on the built-in base.

Adapters are made directly with peft (random, non-zero) and brought in with `adapters import`; one
test trains on a 4-bit base with `adapters train` and merges the result at full precision.
"""

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from support.adapters import load_base, logits, make_lora, with_adapter
from support.tiny_models import bpe_tokenizer, save_base
from transformers import AutoModelForCausalLM

from loraledger.settings import Settings

TINY = "builtin:tiny"


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    """The error line, after checking it is one line and the last thing said (progress may precede it)."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr
    return str(errors[0])


def show(adapters, ref: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = adapters("show", ref, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def checkout(ref: str, dest: Path) -> Path:
    return Settings.load().open_registry().checkout(ref, dest)


@pytest.fixture
def imported(adapters, tiny_base: Path, tmp_path: Path) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """legal@1 (r=4 on q,v) and style@1 (r=8 on q,v,o), imported from folders naming builtin:tiny."""
    folders = {
        "legal": make_lora(tiny_base, tmp_path / "legal", r=4, seed=1, base_id=TINY),
        "style": make_lora(
            tiny_base, tmp_path / "style", r=8, seed=2, base_id=TINY, targets=("q_proj", "v_proj", "o_proj")
        ),
    }
    for name, folder in folders.items():
        result = adapters("import", name, str(folder))
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == f"{name}@1"
    return folders


def test_import_records_the_adapter_and_its_base(
    adapters, imported: dict[str, Path], tiny_base: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    version = show(adapters, "legal@1")
    assert version["kind"] == "import" and version["current"]
    assert version["base"]["model_id"] == TINY and version["base"]["weights_digest"]
    assert version["lora"] == {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    assert version["training"]["source"] == str(imported["legal"].resolve())
    stored = checkout("legal@1", tmp_path / "stored")
    assert sorted(p.name for p in stored.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert (
        load_file(stored / "adapter_model.safetensors").keys()
        == load_file(imported["legal"] / "adapter_model.safetensors").keys()
    )

    # A second import of the same name becomes current only when asked.
    again = adapters("import", "legal", str(imported["style"]))
    assert again.exit_code == 0 and again.stdout.strip() == "legal@2"
    assert "adapters promote legal@2" in again.stderr
    assert not show(adapters, "legal@2")["current"]


def test_import_refusals(adapters, imported: dict[str, Path], tiny_base: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text((imported["legal"] / "adapter_config.json").read_text())
    torch.save(load_file(imported["legal"] / "adapter_model.safetensors"), pickled / "adapter_model.bin")
    assert "only safetensors adapters are accepted" in one_line_error(adapters("import", "p", str(pickled)))

    # An adapter made for another (smaller) Llama does not fit the built-in base.
    other_base = save_base(
        tmp_path / "other-base", bpe_tokenizer(["some text to learn from"] * 10, vocab_size=300)
    )
    foreign = make_lora(other_base, tmp_path / "foreign", seed=4)
    assert "does not fit builtin:tiny" in one_line_error(
        adapters("import", "f", str(foreign), "--base", TINY)
    )

    # legal's versions were trained on builtin:tiny: a version on another base is refused.
    error = one_line_error(adapters("import", "legal", str(foreign)))
    assert "legal@1 was trained on builtin:tiny" in error and "use another adapter name" in error

    nameless = make_lora(tiny_base, tmp_path / "nameless", seed=5, base_id="")
    assert "pass --base MODEL" in one_line_error(adapters("import", "n", str(nameless)))
    assert "neither an adapter folder" in one_line_error(adapters("import", "n", str(tmp_path / "missing")))


def test_stack_is_exact_and_recorded(
    adapters, imported: dict[str, Path], tiny_base: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    result = adapters("stack", "both", "legal@1", "style@1")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "both@1"

    version = show(adapters, "both@1")
    assert version["kind"] == "stack" and version["current"]
    assert version["inputs"] == [{"ref": "legal@1", "weight": 1.0}, {"ref": "style@1", "weight": 1.0}]
    assert version["lora"]["r"] == 12
    assert version["training"]["method"] == "cat" and version["training"]["max_logit_diff"] <= 1e-5
    lineage = json.loads(adapters("lineage", "both", "--json").stdout)
    assert [item["ref"] for item in lineage[0]["inputs"]] == ["legal@1", "style@1"]

    # The stacked adapter computes what the two inputs compute applied together.
    together = PeftModel.from_pretrained(load_base(tiny_base), str(imported["legal"]), adapter_name="legal")
    together.load_adapter(str(imported["style"]), adapter_name="style")
    together.base_model.set_adapter(["legal", "style"])
    together.eval()
    stacked = with_adapter(tiny_base, checkout("both@1", tmp_path / "both"))
    difference = float((logits(stacked) - logits(together)).abs().max())
    assert difference <= 1e-5
    assert (logits(stacked) - logits(with_adapter(tiny_base, imported["legal"]))).abs().max() > 1e-2


def test_stack_refusals(adapters, imported: dict[str, Path], tiny_base: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    error = one_line_error(adapters("stack", "mix", "legal@1", "style@1", "--method", "ties"))
    assert error == (
        "error: --method ties needs inputs of equal rank (legal@1 r=4, style@1 r=8): "
        "use --method cat (exact) or svd"
    )
    assert "one weight per input" in one_line_error(
        adapters("stack", "mix", "legal@1", "style@1", "--weights", "1")
    )
    assert "invalid --weights" in one_line_error(
        adapters("stack", "mix", "legal@1", "style@1", "--weights", "1,x")
    )
    assert "at least two" in one_line_error(adapters("stack", "mix", "legal@1"))

    other_base = save_base(
        tmp_path / "other-base", bpe_tokenizer(["some text to learn from"] * 10, vocab_size=300)
    )
    assert adapters("import", "other", str(make_lora(other_base, tmp_path / "o", seed=3))).exit_code == 0
    error = one_line_error(adapters("stack", "mix", "legal@1", "other@1"))
    assert "must share one base" in error
    assert adapters("show", "mix").exit_code != 0  # nothing registered


def test_weighted_svd_stack_is_kind_merge(adapters, imported: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    result = adapters("stack", "blend", "legal@1", "style@1", "--method", "svd", "--weights", "1,0.5")
    assert result.exit_code == 0, result.output
    version = show(adapters, "blend@1")
    assert version["kind"] == "merge" and version["lora"]["r"] == 8
    assert version["inputs"] == [{"ref": "legal@1", "weight": 1.0}, {"ref": "style@1", "weight": 0.5}]
    assert version["training"]["max_logit_diff"] is None


def test_merge_is_checked_and_recorded(
    adapters, imported: dict[str, Path], tiny_base: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "merged"
    result = adapters("merge", "legal@1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out.resolve())

    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    difference = float((logits(merged) - logits(with_adapter(tiny_base, imported["legal"]))).abs().max())
    assert difference <= 1e-4
    assert (out / "tokenizer.json").read_bytes() == (tiny_base / "tokenizer.json").read_bytes()

    [publication] = show(adapters, "legal@1")["publications"]
    assert publication["kind"] == "merge" and publication["target"] == str(out.resolve())
    details = publication["details"]
    assert details["dtype"] == "fp32" and details["max_logit_diff"] <= 1e-4
    assert details["saved_max_logit_diff"] <= 1e-4 and details["path"] == str(out.resolve())
    assert "model.safetensors" in details["files"]

    assert "not empty" in one_line_error(adapters("merge", "legal@1", "--out", str(out)))


def test_export_for_peft_vllm_and_lorax(
    adapters, imported: dict[str, Path], tiny_base: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dest = tmp_path / "serve"
    peft_export = adapters("export", "style@1", str(dest))
    assert peft_export.exit_code == 0, peft_export.output
    folder = dest / "style-v1"
    assert peft_export.stdout.strip() == str(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == TINY
    assert (
        load_file(folder / "adapter_model.safetensors").keys()
        == load_file(imported["style"] / "adapter_model.safetensors").keys()
    )
    assert "already exists" in one_line_error(adapters("export", "style@1", str(dest)))

    vllm = adapters("export", "style@1", "--out", str(dest), "--format", "vllm", "--force")
    assert vllm.exit_code == 0, vllm.output
    module = json.loads((dest / "style-v1.vllm.json").read_text())
    assert module == {"name": "style-v1", "path": str(folder.resolve()), "base_model_name": TINY}
    assert "--lora-modules" in vllm.stderr

    lorax = adapters("export", "legal@1", str(dest), "--format", "lorax")
    assert lorax.exit_code == 0, lorax.output
    parameters = json.loads((dest / "legal-v1.lorax.json").read_text())
    assert parameters == {"adapter_id": str((dest / "legal-v1").resolve()), "adapter_source": "local"}

    # Rank above vLLM's default --max-lora-rank: exported, with the flag to pass.
    wide = make_lora(tiny_base, tmp_path / "wide", r=24, seed=6, base_id=TINY)
    assert adapters("import", "wide", str(wide)).exit_code == 0
    warned = adapters("export", "wide@1", str(dest), "--format", "vllm")
    assert warned.exit_code == 0 and "--max-lora-rank 32" in warned.stderr

    kinds = [p["details"]["format"] for p in show(adapters, "style@1")["publications"]]
    assert kinds == ["peft", "vllm"]


@pytest.mark.slow
def test_adapter_trained_on_4bit_base_merges_at_full_precision(  # type: ignore[no-untyped-def]
    adapters, tiny_base: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data.jsonl"  # a handful of short rows: one optimizer step
    rows = [f"The court held in case {n} that the clause was void for uncertainty." for n in range(4)]
    data.write_text("".join(json.dumps({"text": row}) + "\n" for row in rows))
    trained = adapters(
        "train", "q4", "--base", TINY, "--data", str(data), "--quantize", "4bit",
        "--epochs", "1", "--max-length", "64", "--batch-tokens", "512", "--warmup", "0", "--no-eval", "-q",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert show(adapters, "q4@1")["training"]["quantize"] == "4bit"

    out = tmp_path / "merged"
    merged = adapters("merge", "q4@1", "--out", str(out))
    assert merged.exit_code == 0, merged.output
    details = show(adapters, "q4@1")["publications"][0]["details"]
    assert details["trained_quantize"] == "4bit" and details["max_logit_diff"] <= 1e-4

    # Full precision: each merged weight is the fp32 base weight plus the LoRA update, to float rounding
    # (a merge on the 4-bit base would carry its quantization error, orders of magnitude larger).
    adapter_dir = checkout("q4@1", tmp_path / "adapter")
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    lora = load_file(adapter_dir / "adapter_model.safetensors")
    base = load_file(next(tiny_base.glob("*.safetensors")))
    result = load_file(out / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj"
    update = lora[f"base_model.model.{key}.lora_B.weight"] @ lora[f"base_model.model.{key}.lora_A.weight"]
    expected = base[f"{key}.weight"] + update * config["lora_alpha"] / config["r"]
    assert float(update.abs().max()) > 0
    assert float((result[f"{key}.weight"] - expected).abs().max()) <= 1e-6


def test_stack_cli_saves_nothing_for_a_refused_input(
    adapters, imported: dict[str, Path], tiny_base: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dora = make_lora(tiny_base, tmp_path / "dora", seed=7, base_id=TINY, use_dora=True)
    imported_dora = adapters("import", "dora", str(dora))
    assert imported_dora.exit_code == 0 and "DoRA" in imported_dora.stderr
    error = one_line_error(adapters("stack", "mix", "legal@1", "dora@1"))
    assert "dora@1 uses DoRA (use_dora)" in error
    assert "DoRA" in one_line_error(adapters("export", "dora@1", str(tmp_path / "x"), "--format", "vllm"))
