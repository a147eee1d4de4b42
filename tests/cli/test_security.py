"""Security defaults: safetensors only unless --allow-pickle, a base's own code runs only with
--trust-remote-code, and tokens never reach the registry database or the run logs."""

import json
import shutil
from pathlib import Path

import pytest
from support import cli_process

from loraledger.schemas.errors import InvalidInput

TEXTS = [f"Clause {i}: the licensee shall keep every notice intact, word {i}." for i in range(40)]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.tiny_models import bpe_tokenizer, save_base

    return save_base(tmp_path_factory.mktemp("bases") / "tiny-llama", bpe_tokenizer(TEXTS, vocab_size=300))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "update.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS[:6]))
    return path


def train(*args: str) -> tuple[str, ...]:
    return ("train", *args, "--max-length", "64", "--no-eval", "-q")


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


@pytest.mark.slow
def test_pickled_base_weights_load_only_with_allow_pickle(
    adapters, base: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled-base"
    shutil.copytree(base, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()

    line = one_error_line(adapters(*train("ip", "--base", str(pickled), "--data", str(data))))
    assert "holds only pickled weights (pytorch_model.bin)" in line and "--allow-pickle" in line
    # With the flag it gets past every check and into training (stopped at the first step here).
    monkeypatch.setenv("ADAPTERS_FAULT", "train-step:error")
    allowed = adapters(*train("ip", "--base", str(pickled), "--data", str(data), "--allow-pickle"))
    assert "fault injected at train-step" in allowed.stderr
    assert adapters("list", "--json").stdout.strip() == "[]"


def test_pickled_adapter_folders_are_refused(tmp_path: Path) -> None:
    from loraledger.trainer.models import check_adapter_folder

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(InvalidInput, match=r"only pickled adapter weights \(adapter_model\.bin\)"):
        check_adapter_folder(folder, allow_pickle=False)
    check_adapter_folder(folder, allow_pickle=True)
    (folder / "adapter_model.safetensors").write_bytes(b"safe")
    check_adapter_folder(folder, allow_pickle=False)  # safetensors are what gets loaded


def with_remote_code(base: Path, folder: Path, marker: Path, part: str) -> Path:
    """A copy of ``base`` whose model (or tokenizer) class is defined by Python code shipped with it."""
    shutil.copytree(base, folder)
    if part == "model":
        config = json.loads((folder / "config.json").read_text())
        config["model_type"] = "loraledger-remote"
        config["auto_map"] = {
            "AutoConfig": "remote.RemoteConfig",
            "AutoModelForCausalLM": "remote.RemoteModel",
        }
        (folder / "config.json").write_text(json.dumps(config))
    else:
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["tokenizer_class"] = "RemoteTokenizer"
        config["auto_map"] = {"AutoTokenizer": [None, "remote.RemoteTokenizer"]}
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "remote.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('this code ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast\n"
        "class RemoteConfig(LlamaConfig):\n    model_type = 'loraledger-remote'\n"
        "class RemoteModel(LlamaForCausalLM):\n    config_class = RemoteConfig\n"
        "class RemoteTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("part", ["model", "tokenizer"])
def test_a_bases_own_code_runs_only_with_trust_remote_code(
    adapters, base: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: str
) -> None:
    marker = tmp_path / "EXECUTED"
    remote = with_remote_code(base, tmp_path / "remote-base", marker, part)
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))  # where transformers copies it
    # The real program, as a user runs it: one line, and the code never ran.
    refused = cli_process.run(
        *train("ip", "--base", str(remote), "--data", str(data)), workdir=tmp_path / "w"
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stdout + refused.stderr
    (line,) = refused.stderr.splitlines()
    assert "contains custom code" in line and "--trust-remote-code" in line
    assert not marker.exists()
    if part == "tokenizer":
        return  # one positive case is enough: the flag is passed to both loaders alike

    monkeypatch.setenv("ADAPTERS_FAULT", "train-step:error")  # stop at the first step
    trusted = adapters(*train("ip", "--base", str(remote), "--data", str(data), "--trust-remote-code"))
    assert "fault injected at train-step" in trusted.stderr
    assert marker.read_text() == "this code ran"


@pytest.mark.slow
def test_tokens_never_reach_the_database_or_the_logs(
    adapters, base: Path, data: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "hf_LoraLedgerCanary7f3c2b9d1e0a4c8b6d5e"
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.setenv(variable, token)
    result = adapters("-v", "train", "ip", "--base", str(base), "--data", str(data), "--eval", str(data),
                      "--max-length", "64", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert adapters("show", "ip@1", "--json").exit_code == 0

    scanned = [path for path in home.rglob("*") if path.is_file()]
    assert any(path.name == "registry.db" for path in scanned)
    assert any(path.suffix == ".log" for path in scanned)  # the run's log
    for path in scanned:
        content = path.read_bytes()
        assert token.encode() not in content, path
        assert token[3:15].encode() not in content, path  # nor a masked fragment of it
    assert token[3:15] not in result.output
