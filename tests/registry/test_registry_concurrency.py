"""Concurrent writers as real processes, on SQLite and PostgreSQL.

- 8 processes registering versions of one adapter at once lose no version and duplicate no number
  (SQLite: WAL + BEGIN IMMEDIATE + busy timeout; PostgreSQL: the adapter row lock in store.register).
  On SQLite the processes also race to create the registry itself.
- 8 processes moving ``current`` at once never lose an update: every move starts where the previous
  one ended (the ``expect`` guard of store.move_alias, checked under the same lock).

Processes are forked after the registry code is imported, so they start at once and the test is fast;
a barrier releases them together.
"""

import itertools
import multiprocessing
import queue
from pathlib import Path
from typing import Any

import pytest
from support.registry_factory import BASE, dataset

from loraledger.registry import ArtifactStore, Registry
from loraledger.schemas.errors import Conflict
from loraledger.schemas.records import NewDatasetUse, NewVersion

WRITERS = 8
VERSIONS_EACH = 5
MOVES_EACH = 5
context = multiprocessing.get_context("fork")


def _open(db_url: str, store_url: str, who: str) -> Registry:
    return Registry.open(db_url, store_url, user=who, host="testhost")


def _register(db_url: str, store_url: str, artifact: str, writer: int, start: Any, results: Any) -> None:
    try:
        registry = _open(db_url, store_url, f"writer-{writer}")  # on a new SQLite file: all migrate at once
        start.wait(timeout=60)
        numbers = []
        for index in range(VERSIONS_EACH):
            new = NewVersion(
                name="ip",
                kind="train",
                base=BASE,
                artifact_digest=artifact,
                datasets=[NewDatasetUse(dataset=dataset(f"w{writer}-{index}"), role="train", rows=3)],
            )
            numbers.append(registry.register(new).number)
        results.put((writer, numbers))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put((writer, f"{type(exc).__name__}: {exc}"))


def _move(db_url: str, store_url: str, writer: int, start: Any, results: Any) -> None:
    try:
        registry = _open(db_url, store_url, f"mover-{writer}")
        start.wait(timeout=60)
        moved = refused = 0
        while moved < MOVES_EACH:
            seen = registry.store.aliases("ip")["current"]
            target = seen % 4 + 1  # always somewhere else: 1 -> 2 -> 3 -> 4 -> 1
            try:
                if writer % 2:
                    registry.promote(f"ip@{target}", reason=f"mover {writer}")
                else:
                    registry.rollback("ip", to=f"ip@{target}", reason=f"mover {writer}")
                moved += 1
            except Conflict:
                refused += 1  # someone moved it between our read and our write: read again
        results.put((writer, (moved, refused)))
    except BaseException as exc:
        results.put((writer, f"{type(exc).__name__}: {exc}"))


def _run(target: Any, args: tuple[Any, ...]) -> dict[int, Any]:
    start = context.Barrier(WRITERS)
    results = context.Queue()
    processes = [context.Process(target=target, args=(*args, w, start, results)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    try:
        collected = dict(results.get(timeout=180) for _ in processes)
    except queue.Empty:
        pytest.fail("a writer process hung")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = {w: r for w, r in collected.items() if isinstance(r, str)}
    assert not errors
    return collected


def test_concurrent_registrations_lose_none_and_duplicate_none(db_url: str, tmp_path: Path) -> None:
    store_url = str(tmp_path / "artifacts")
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    artifact = ArtifactStore(store_url).put_folder(folder)

    numbers = _run(_register, (db_url, store_url, artifact))

    total = WRITERS * VERSIONS_EACH
    handed_out = sorted(n for each in numbers.values() for n in each)
    assert handed_out == list(range(1, total + 1))  # none lost, none duplicated, no gap
    assert all(each == sorted(each) for each in numbers.values())  # each writer's numbers increase
    registry = _open(db_url, store_url, "checker")
    try:
        versions = registry.versions("ip")
        assert [v.number for v in versions] == list(range(1, total + 1))
        # Each number belongs to the row its writer inserted, with that writer's data.
        for writer, each in numbers.items():
            for index, number in enumerate(each):
                version = versions[number - 1]
                assert version.created_by == f"writer-{writer}"
                assert version.datasets[0].dataset.digest == dataset(f"w{writer}-{index}").digest
        moves = [(e.from_version, e.to_version) for e in registry.history("ip")]
        assert len(moves) == total
        assert all(before == previous[1] for previous, (before, _) in itertools.pairwise(moves))
    finally:
        registry.store.engine.dispose()  # type: ignore[attr-defined]


def test_concurrent_alias_moves_lose_no_update(db_url: str, tmp_path: Path) -> None:
    store_url = str(tmp_path / "artifacts")
    registry = _open(db_url, store_url, "setup")
    from support.registry_factory import chain

    chain(registry, "ip", 4)
    registered = len(registry.history("ip"))
    registry.store.engine.dispose()  # type: ignore[attr-defined]  # nothing pooled crosses the fork

    outcomes = _run(_move, (db_url, store_url))

    assert all(moved == MOVES_EACH for moved, _ in outcomes.values())
    registry = _open(db_url, store_url, "checker")
    try:
        moves = [(e.from_version, e.to_version, e.created_by) for e in registry.history("ip")][registered:]
        assert len(moves) == WRITERS * MOVES_EACH  # every accepted move is recorded once
        # No lost update: each move starts where the one before it ended.
        assert all(move[0] == before[1] for before, move in itertools.pairwise(moves))
        assert registry.store.aliases("ip")["current"] == moves[-1][1]
        assert {who for *_, who in moves} == {f"mover-{w}" for w in range(WRITERS)}
    finally:
        registry.store.engine.dispose()  # type: ignore[attr-defined]
