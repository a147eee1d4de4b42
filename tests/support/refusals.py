"""A registry holding ``ip@1`` (registered without training, on a small local base) and a ``refused``
runner that checks the promise every refused input must keep: one ``error:`` line, the documented exit
code, no traceback, nothing registered. tests/security/conftest.py makes them that folder's fixtures."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from loraledger.fingerprints import fingerprint
from loraledger.registry import Registry
from loraledger.schemas.jobs import BaseSource
from loraledger.schemas.records import BaseModelRecord
from loraledger.settings import Settings
from support.seeding import seed_version

TEXTS = [f"Clause {i}: the licensee shall keep every notice intact, word {i}." for i in range(40)]


@pytest.fixture(scope="session")
def local_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.tiny_models import bpe_tokenizer, save_base

    return save_base(tmp_path_factory.mktemp("bases") / "tiny-llama", bpe_tokenizer(TEXTS, vocab_size=300))


@pytest.fixture
def base_record(local_base: Path, home: Path) -> BaseModelRecord:
    return fingerprint(BaseSource(model_id=str(local_base), path=local_base), home / "cache")


@pytest.fixture
def registry(base_record: BaseModelRecord) -> Registry:
    registry = Settings.load().open_registry()
    seed_version(registry, "ip", weights=b"not a real adapter", base=base_record)
    return registry


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "update.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS[:4]))
    return path


@pytest.fixture
def refused(adapters, registry: Registry) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    """Run a command that must be refused; return its one error line."""

    def run(*args: str, code: int | None = None) -> str:
        before = adapters("list", "--json").stdout
        result = adapters(*args)
        assert result.exit_code != 0, result.output
        if code is not None:
            assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        # One error line, the last thing said; a command may print progress before it (import does).
        lines = result.stderr.splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
        assert len(errors[0]) < 400  # a bounded line, whatever the input held
        assert adapters("list", "--json").stdout == before
        return str(errors[0])

    return run
