"""The test Hub server, driven by the real huggingface_hub client over loopback."""

import json
from pathlib import Path

import httpx2
import pytest
import torch
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.torch import save_file
from support.hub_server import TEST_TOKEN, HubServer

REPO_ID = "loraledger-tests/adapter"


def _adapter_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    # A card with metadata, as peft writes: committing a README.md makes the client validate its YAML first.
    (folder / "README.md").write_text("---\nlibrary_name: peft\n---\n# Adapter\n")
    # 512 x 1024 float32 = 2 MiB: an LFS file by both suffix and size.
    save_file({"lora_A": torch.randn(512, 1024)}, folder / "adapter_model.safetensors")
    return folder


def _same_files(expected: Path, downloaded: str) -> None:
    for name in ("README.md", "adapter_config.json", "adapter_model.safetensors"):
        assert (Path(downloaded) / name).read_bytes() == (expected / name).read_bytes()


def _publish(hub: HubServer, folder: Path) -> tuple[HfApi, str]:
    api = HfApi(endpoint=hub.url, token=TEST_TOKEN)
    api.create_repo(REPO_ID, private=True, exist_ok=True)
    commit = api.upload_folder(repo_id=REPO_ID, folder_path=folder, commit_message="adapter v3")
    api.create_tag(REPO_ID, tag="v3", revision=commit.oid)
    return api, commit.oid


def test_publish_private_repo_and_download_by_tag_and_commit(hub_env: HubServer, tmp_path: Path) -> None:
    folder = _adapter_folder(tmp_path / "adapter")
    api, commit_id = _publish(hub_env, folder)

    # One commit carrying both files; the safetensors went through LFS, the JSON inline.
    assert [r for r in hub_env.requests if "/commit/" in r] == [f"POST /api/models/{REPO_ID}/commit/main"]
    assert len([r for r in hub_env.requests if r.startswith("PUT /_lfs/")]) == 1
    assert "POST /api/validate-yaml" in hub_env.requests  # checked before the README.md is committed
    assert len(commit_id) == 40 and int(commit_id, 16) >= 0

    assert sorted(api.list_repo_files(REPO_ID, revision="v3")) == [
        ".gitattributes",
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    refs = api.list_repo_refs(REPO_ID)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", commit_id)]
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [("v3", "refs/tags/v3", commit_id)]

    info = api.model_info(REPO_ID, revision="v3", files_metadata=True)
    assert info.sha == commit_id and info.private
    siblings = {s.rfilename: s for s in info.siblings or []}
    weights = siblings["adapter_model.safetensors"]
    assert weights.lfs is not None and weights.size == (folder / "adapter_model.safetensors").stat().st_size
    assert siblings["adapter_config.json"].lfs is None
    assert api.repo_info(REPO_ID).sha == commit_id

    by_tag = snapshot_download(REPO_ID, revision="v3", endpoint=hub_env.url)
    # A second cache, so that the files really come over HTTP again rather than from the first download.
    by_commit = snapshot_download(REPO_ID, revision=commit_id, endpoint=hub_env.url, cache_dir=tmp_path / "2")
    _same_files(folder, by_tag)
    _same_files(folder, by_commit)
    single = hf_hub_download(REPO_ID, "adapter_model.safetensors", revision="v3", endpoint=hub_env.url)
    assert Path(single).read_bytes() == (folder / "adapter_model.safetensors").read_bytes()

    # The token travelled in Authorization headers, and only the test token was ever sent.
    assert set(hub_env.seen_tokens) == {TEST_TOKEN}


def test_errors_map_to_the_clients_error_classes(hub_env: HubServer, tmp_path: Path) -> None:
    _publish(hub_env, _adapter_folder(tmp_path / "adapter"))
    api = HfApi(endpoint=hub_env.url)

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("loraledger-tests/missing")
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without a token
        api.model_info(REPO_ID, token=False)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("loraledger-tests/missing", endpoint=hub_env.url)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO_ID, revision="v404", endpoint=hub_env.url)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO_ID, revision="0" * 40, endpoint=hub_env.url)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO_ID, "adapter_config.json", revision="v404", endpoint=hub_env.url)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO_ID, "missing.json", revision="v3", endpoint=hub_env.url)
    with pytest.raises(HfHubHTTPError) as invalid:
        api.model_info(REPO_ID, token="hf_wrong")
    assert invalid.value.response.status_code == 401

    api.create_repo(REPO_ID, exist_ok=True)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(REPO_ID)
    assert conflict.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError) as tag_conflict:
        api.create_tag(REPO_ID, tag="v3")
    assert tag_conflict.value.response.status_code == 409


def test_new_commit_moves_main_but_not_the_tag(hub_env: HubServer, tmp_path: Path) -> None:
    folder = _adapter_folder(tmp_path / "adapter")
    api, tagged = _publish(hub_env, folder)

    new_config = b'{"r": 16}'
    second = api.create_commit(
        REPO_ID,
        operations=[CommitOperationAdd("adapter_config.json", new_config)],
        commit_message="adapter v4",
    )
    assert second.oid != tagged
    refs = api.list_repo_refs(REPO_ID)
    assert [b.target_commit for b in refs.branches] == [second.oid]
    assert [t.target_commit for t in refs.tags] == [tagged]

    old = hf_hub_download(REPO_ID, "adapter_config.json", revision="v3", endpoint=hub_env.url)
    new = hf_hub_download(REPO_ID, "adapter_config.json", revision="main", endpoint=hub_env.url)
    assert Path(old).read_bytes() == (folder / "adapter_config.json").read_bytes()
    assert Path(new).read_bytes() == new_config
    # The unchanged weights were not uploaded again.
    assert len([r for r in hub_env.requests if r.startswith("PUT /_lfs/")]) == 1


def test_default_endpoint_and_module_functions_reach_the_server(hub_env: HubServer) -> None:
    import huggingface_hub

    url = huggingface_hub.create_repo("loraledger-tests/defaults")
    assert url.startswith(hub_env.url)
    assert HfApi().list_repo_files("loraledger-tests/defaults") == [".gitattributes"]
    assert Path(hf_hub_download("loraledger-tests/defaults", ".gitattributes")).read_bytes()


def test_head_and_range_requests(hub_env: HubServer, tmp_path: Path) -> None:
    folder = _adapter_folder(tmp_path / "adapter")
    _, commit_id = _publish(hub_env, folder)
    data = (folder / "adapter_model.safetensors").read_bytes()
    url = f"{hub_env.url}/{REPO_ID}/resolve/v3/adapter_model.safetensors"
    auth = {"Authorization": f"Bearer {TEST_TOKEN}"}

    head = httpx2.head(url, headers=auth)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-Repo-Commit"] == commit_id
    assert head.headers["X-Linked-Size"] == str(len(data))
    assert head.headers["Content-Length"] == str(len(data))
    part = httpx2.get(url, headers={**auth, "Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == data[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert httpx2.get(url, headers={**auth, "Range": f"bytes={len(data)}-"}).status_code == 416


def test_state_survives_a_restart_on_the_same_root(hub_env: HubServer, tmp_path: Path) -> None:
    _, commit_id = _publish(hub_env, _adapter_folder(tmp_path / "adapter"))
    with HubServer(hub_env.root) as restarted:
        refs = HfApi(endpoint=restarted.url, token=TEST_TOKEN).list_repo_refs(REPO_ID)
    assert [t.target_commit for t in refs.tags] == [commit_id]


def test_tiny_transformers_model_round_trip(hub_env: HubServer, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(tmp_path / "model")

    api = HfApi(endpoint=hub_env.url)
    api.create_repo("loraledger-tests/tiny-llama", private=True)
    commit = api.upload_folder(repo_id="loraledger-tests/tiny-llama", folder_path=tmp_path / "model")
    api.create_tag("loraledger-tests/tiny-llama", tag="v1", revision=commit.oid)
    local = snapshot_download("loraledger-tests/tiny-llama", revision="v1", endpoint=hub_env.url)
    loaded = AutoModelForCausalLM.from_pretrained(local).eval()

    input_ids = torch.randint(0, config.vocab_size, (2, 12))
    with torch.no_grad():
        assert torch.equal(model(input_ids).logits, loaded(input_ids).logits)
