"""`adapters push` and `adapters import` from a Hub, against the loopback Hub server with the real client:
push, download back with snapshot_download, load with peft or transformers, compare logits."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError
from support.adapters import load_base, logits, make_lora, with_adapter
from support.hub_server import TEST_TOKEN, HubServer
from support.tiny_models import bpe_tokenizer, save_base
from transformers import AutoModelForCausalLM

TINY = "builtin:tiny"


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return str(errors[0])


def show(adapters, ref: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(adapters("show", ref, "--json").stdout)  # type: ignore[no-any-return]


def download(hub: HubServer, repo_id: str, revision: str, dest: Path) -> Path:
    return Path(
        snapshot_download(repo_id, revision=revision, endpoint=hub.url, token=TEST_TOKEN, local_dir=dest)
    )


def test_push_adapter_round_trip(  # type: ignore[no-untyped-def]
    adapters, hub_env: HubServer, tiny_base: Path, home: Path, tmp_path: Path
) -> None:
    folder = make_lora(tiny_base, tmp_path / "legal", r=4, seed=1, base_id=TINY)
    assert adapters("import", "legal", str(folder)).exit_code == 0

    pushed = adapters("push", "legal@1", "--repo", "team/legal", "--private")
    assert pushed.exit_code == 0, pushed.output
    assert pushed.stdout.strip() == f"{hub_env.url}/team/legal@v1"
    # One commit (create_commit with explicit operations), then the tag on it.
    assert [r for r in hub_env.requests if "/commit/" in r] == ["POST /api/models/team/legal/commit/main"]

    downloaded = download(hub_env, "team/legal", "v1", tmp_path / "download")
    assert sorted(p.name for p in downloaded.iterdir() if not p.name.startswith(".")) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    published = with_adapter(tiny_base, downloaded)
    assert torch.equal(logits(published), logits(with_adapter(tiny_base, folder)))

    api = HfApi(endpoint=hub_env.url, token=TEST_TOKEN)
    refs = api.list_repo_refs("team/legal")
    [tag] = refs.tags
    [publication] = show(adapters, "legal@1")["publications"]
    assert publication["kind"] == "push" and publication["target"] == f"{hub_env.url}/team/legal"
    details = publication["details"]
    assert (details["repo"], details["tag"], details["kind"]) == ("team/legal", "v1", "adapter")
    assert tag.name == "v1" and tag.target_commit == details["commit"]
    assert api.model_info("team/legal").private
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without a token
        HfApi(endpoint=hub_env.url, token=False).model_info("team/legal")

    card = ModelCard.load(downloaded / "README.md")
    assert card.data.library_name == "peft"
    assert card.data.base_model is None  # builtin:tiny is not a Hub id; it is named in the text
    assert card.data.loraledger["ref"] == "legal@1"
    assert card.data.loraledger["base"]["model_id"] == TINY
    assert "builtin:tiny" in card.text and 'revision="v1"' in card.text

    # The token is used, never kept: not in the registry, the card or the push log.
    log_file = home / "runs" / "push-legal-v1.log"
    assert "tagged v1" in log_file.read_text()
    assert TEST_TOKEN in hub_env.seen_tokens
    for path in [*home.rglob("*"), downloaded / "README.md"]:
        if path.is_file():
            assert TEST_TOKEN.encode() not in path.read_bytes(), path

    # A version goes to a repository once.
    again = one_line_error(adapters("push", "legal@1", "--repo", "team/legal"))
    assert again == "error: team/legal already has a tag v1: each version is pushed once per repository"


def test_import_from_hub_then_push_merged_and_adapter(  # type: ignore[no-untyped-def]
    adapters, hub_env: HubServer, tmp_path: Path
) -> None:
    api = HfApi(endpoint=hub_env.url, token=TEST_TOKEN)
    base = save_base(
        tmp_path / "base", bpe_tokenizer(["The court held that the clause was void."] * 20, vocab_size=300)
    )
    api.create_repo("org/tiny-llama")
    api.upload_folder(repo_id="org/tiny-llama", folder_path=base)
    made = make_lora(base, tmp_path / "made", r=8, seed=3, base_id="org/tiny-llama")
    api.create_repo("people/clauses")
    api.upload_folder(repo_id="people/clauses", folder_path=made)

    imported = adapters("import", "clauses", "people/clauses")
    assert imported.exit_code == 0, imported.output
    version = show(adapters, "clauses@1")
    assert version["base"]["model_id"] == "org/tiny-llama" and len(version["base"]["revision"]) == 40
    assert (
        version["training"]["source"] == "people/clauses"
        and len(version["training"]["source_revision"]) == 40
    )

    merged = adapters("push", "clauses@1", "--repo", "team/clauses-merged", "--merged")
    assert merged.exit_code == 0, merged.output
    downloaded = download(hub_env, "team/clauses-merged", "v1", tmp_path / "merged")
    model = AutoModelForCausalLM.from_pretrained(downloaded, dtype=torch.float32).eval()
    expected = logits(with_adapter(base, made))
    difference = float((logits(model) - expected).abs().max())
    assert difference <= 1e-4
    assert (logits(load_base(base)) - expected).abs().max() > 1e-2

    card = ModelCard.load(downloaded / "README.md")
    assert card.data.base_model == "org/tiny-llama"
    assert card.data.base_model_relation == "merge" and card.data.library_name == "transformers"
    assert card.data.loraledger["merge"]["max_logit_diff"] <= 1e-4
    details = show(adapters, "clauses@1")["publications"][0]["details"]
    assert details["kind"] == "merged" and details["merge"]["dtype"] == "fp32"

    adapter = adapters("push", "clauses@1", "--repo", "team/clauses", "--adapter")
    assert adapter.exit_code == 0, adapter.output
    card = ModelCard.load(download(hub_env, "team/clauses", "v1", tmp_path / "adapter") / "README.md")
    assert card.data.base_model == "org/tiny-llama"
    assert card.data.base_model_relation == "adapter" and card.data.library_name == "peft"


def test_push_errors_are_one_line(  # type: ignore[no-untyped-def]
    adapters, hub_env: HubServer, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_lora(tiny_base, tmp_path / "legal", r=4, seed=1, base_id=TINY)
    assert adapters("import", "legal", str(folder)).exit_code == 0

    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_token")
    error = one_line_error(adapters("push", "legal@1", "--repo", "team/legal"))
    assert "the Hub refused the token (401)" in error and "hf_not_a_valid_token" not in error

    monkeypatch.delenv("HF_TOKEN")
    assert "no Hugging Face token" in one_line_error(adapters("push", "legal@1", "--repo", "team/legal"))

    monkeypatch.setenv("HF_TOKEN", TEST_TOKEN)
    assert "OWNER/NAME" in one_line_error(adapters("push", "legal@1", "--repo", "just-a-name"))
    assert "no such repository" in one_line_error(adapters("import", "x", "people/missing"))
    hub_env.stop()  # the Hub is gone
    assert "cannot reach the Hub" in one_line_error(adapters("push", "legal@1", "--repo", "team/legal"))
    assert show(adapters, "legal@1")["publications"] == []
