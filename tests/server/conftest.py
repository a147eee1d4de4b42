"""One ``adapters serve`` process for the module's tests, on builtin:tiny, with its own registry:

- ``legal@1`` (alias ``champion``) and ``legal@2`` (current); ``style@1`` (r=8 on q, v, o);
- ``drift@1`` and ``drift@2`` (current), for the rollback test (the only test that moves an alias);
- ``other@1``, on another base: listed nowhere, refused when asked for.

Adapters are made directly with peft (random, non-zero) and registered with ``Ledger.import_adapter``.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.adapters import make_lora
from support.serving import Server, start_server
from support.tiny_models import save_base, word_tokenizer

import loraledger
from loraledger.ledger import Ledger

TINY = "builtin:tiny"
API_KEY = "test-key-123"


@dataclass
class Served:
    server: Server
    ledger: Ledger
    env: dict[str, str]
    workdir: Path


def registry_env(home: Path, cache: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("ADAPTERS_DB", "ADAPTERS_STORE", "ADAPTERS_FAULT")
    }
    tests = str(Path(__file__).resolve().parent.parent)
    return env | {
        "ADAPTERS_HOME": str(home),
        "ADAPTERS_CACHE": str(cache),
        "ADAPTERS_USER": "tester",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [tests, env.get("PYTHONPATH")])),
    }


def seed(ledger: Ledger, tiny_base: Path, folder: Path) -> None:
    def lora(name: str, seed: int, **options: object) -> str:
        return str(make_lora(tiny_base, folder / f"{name}-{seed}", seed=seed, base_id=TINY, **options))  # type: ignore[arg-type]

    ledger.import_adapter("legal", lora("legal", 1), promote=True)
    ledger.import_adapter("legal", lora("legal", 2), promote=True)
    ledger.alias("legal@1", "champion")
    ledger.import_adapter(
        "style", lora("style", 3, r=8, targets=("q_proj", "v_proj", "o_proj")), promote=True
    )
    ledger.import_adapter("drift", lora("drift", 4), promote=True)
    ledger.import_adapter("drift", lora("drift", 5), promote=True)
    words = ["the", "a", "court", "contract", "law", "text", "of", "and"]
    other_base = save_base(folder / "other-base", word_tokenizer(words))
    other = make_lora(other_base, folder / "other", seed=6)
    ledger.import_adapter("other", str(other), base=str(other_base), promote=True)


@pytest.fixture(scope="module")
def served(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    env = registry_env(root / "home", cache=tiny_base.parent.parent)  # the session's model cache
    ledger = loraledger.open(root / "home", cache=env["ADAPTERS_CACHE"], user="tester")
    seed(ledger, tiny_base, root / "made")
    server = start_server(
        "--base",
        TINY,
        "--max-loaded",
        "2",
        "--max-tokens",
        "64",
        env=env,
        workdir=root / "server",
        api_key=API_KEY,
    )
    try:
        yield Served(server, ledger, env, root)
    finally:
        server.stop()
