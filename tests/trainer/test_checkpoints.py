"""Finding the checkpoint to resume from when a crash may have cut a save short."""

import json
from pathlib import Path

from loraledger.trainer.recipe import last_checkpoint


def checkpoint(folder: Path, step: int, state: str | None) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_newest_complete_checkpoint_wins_and_half_written_ones_go(tmp_path: Path) -> None:
    complete = checkpoint(tmp_path, 4, json.dumps({"global_step": 4}))
    checkpoint(tmp_path, 2, json.dumps({"global_step": 2}))
    no_state = checkpoint(tmp_path, 6, None)  # killed before the state was written
    torn_state = checkpoint(tmp_path, 10, '{"global_st')  # killed while writing it
    (tmp_path / "checkpoint-notes").mkdir()
    assert last_checkpoint(tmp_path) == complete
    assert not no_state.exists() and not torn_state.exists()
    assert (tmp_path / "checkpoint-2").exists()


def test_no_checkpoint(tmp_path: Path) -> None:
    assert last_checkpoint(tmp_path / "missing") is None
    checkpoint(tmp_path, 2, None)
    assert last_checkpoint(tmp_path) is None
