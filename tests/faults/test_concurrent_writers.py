"""Eight writers at once (three real `adapters train` runs, alias moves, rollbacks, a promotion) lose
no update.

Every writer is its own process. Each stops itself right before its first write transaction (the
``write-begin:stop`` fault point), after all its reads (a training run: after training, with its
adapter stored); once all eight are stopped they are resumed together, so their transactions collide
as hard as they can, with no sleeps or timing guesses.
"""

import json
import re
from pathlib import Path

import pytest
from support import cli_process
from support.seeding import seed_version

from loraledger.registry.engine import make_engine
from loraledger.registry.migrate import upgrade
from loraledger.settings import Settings

TEXTS = [f"Clause {i}: the licensee shall keep record {i * 7} for audit purposes." for i in range(40)]
STALE = re.compile(r"^error: ip@current moved to version \d+ while this command ran \(expected 2\); .*\n$")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        monkeypatch.setenv("ADAPTERS_DB", url)
    return str(request.param)


@pytest.fixture(scope="module")
def small_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.tiny_models import bpe_tokenizer, save_base

    return save_base(tmp_path_factory.mktemp("base"), bpe_tokenizer(TEXTS, vocab_size=300))


@pytest.mark.slow
def test_eight_concurrent_writers_lose_no_update(
    adapters, backend: str, small_base: Path, tmp_path: Path
) -> None:
    registry = Settings.load().open_registry()
    seed_version(registry, "ip", weights=b"one")
    seed_version(registry, "ip", weights=b"two", parent="ip@1")  # current: ip@2
    events_before = json.loads(adapters("history", "ip", "--json").stdout)

    barrier = {"ADAPTERS_FAULT": "write-begin:stop"}
    # A training run's first write transaction is the writability check it makes before training
    # (rolled back, nothing written): its barrier is the second, the registration.
    after_training = {"ADAPTERS_FAULT": "write-begin@2:stop"}
    data = tmp_path / "update.jsonl"
    data.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    train = ("train", "ip", "--fresh", "--base", str(small_base), "--data", str(data), "--rank", "4")
    fast = ("--max-length", "64", "--batch-tokens", "256", "--no-eval", "--quiet", "--json")
    registrations = [
        cli_process.start(*train, "--seed", str(i), *fast, workdir=tmp_path / f"train{i}", **after_training)
        for i in range(3)
    ]
    commands = {
        "alias-1": ("alias", "ip@1", "champion", "--reason", "a1"),
        "alias-2": ("alias", "ip@2", "champion", "--reason", "a2"),
        "rollback-to": ("rollback", "ip", "--to", "ip@1", "--reason", "r1"),
        "rollback-parent": ("rollback", "ip", "--reason", "r2"),
        "promote": ("promote", "ip@1", "--reason", "p1"),
    }
    movers = {
        label: cli_process.start(*args, workdir=tmp_path / label, **barrier)
        for label, args in commands.items()
    }
    writers = [*registrations, *movers.values()]
    assert len(writers) == 8
    for writer in writers:
        writer.wait_until_stopped()  # all reads done, no transaction open yet
    for writer in writers:
        writer.resume()
    registered = [writer.finish() for writer in registrations]
    moved = {label: writer.finish() for label, writer in movers.items()}

    # Every registration succeeded, with its own number and no gap. A run moves current only if
    # nobody moved it while it trained (it read ip@2 at its start): at most one of them can.
    assert all(result.returncode == 0 for result in registered), [r.stderr for r in registered]
    trained = [json.loads(result.stdout) for result in registered]
    assert sorted(run["version"]["ref"] for run in trained) == ["ip@3", "ip@4", "ip@5"]
    promoted = sum(run["promoted"] for run in trained)
    assert promoted <= 1
    listed = json.loads(adapters("list", "ip", "--json").stdout)
    assert [version["number"] for version in listed] == [1, 2, 3, 4, 5]

    # Alias moves without a guard always succeed; guarded ones (rollback, promote) succeed or say
    # precisely that current moved under them: never a silent overwrite.
    assert moved["alias-1"].returncode == moved["alias-2"].returncode == 0
    succeeded = [
        label for label in ("rollback-to", "rollback-parent", "promote") if moved[label].returncode == 0
    ]
    for label in {"rollback-to", "rollback-parent", "promote"} - set(succeeded):
        assert moved[label].returncode == 4 and STALE.match(moved[label].stderr), moved[label].stderr
    # The three all expected current == ip@2 and each moves it away, and so do the training runs:
    # the first of these six guarded moves to commit wins, every other one sees current moved.
    assert len(succeeded) + promoted == 1

    # The history holds exactly one event per successful write, and the aliases are its replay.
    events = json.loads(adapters("history", "ip", "--json").stdout)[len(events_before) :]
    assert len(events) == promoted + 2 + len(succeeded)
    reasons = sorted(event["reason"] for event in events)
    expected = ["a1", "a2", *(["trained"] * promoted), *[commands[label][-1] for label in succeeded]]
    assert reasons == sorted(expected)
    replayed: dict[str, int | None] = {}
    for event in json.loads(adapters("history", "ip", "--json").stdout):
        replayed[event["alias"]] = event["to_version"]
    final = {alias: version["number"] for version in listed for alias in version["aliases"]}
    assert final == {alias: number for alias, number in replayed.items() if number is not None}
    assert adapters("verify").exit_code == 0
