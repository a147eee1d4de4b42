"""Property-based fuzzing of what a user controls (issue 17). Every property is bounded (a few dozen
derandomized examples) so that each runs in seconds on two cores; the CLI runs in-process.

Hook for the HTTP surfaces (server, dashboard): ``support.hostile.assert_refusal`` and the strategies
in ``test_fuzz_cli.py`` are meant to be reused by ``tests/fuzz/test_fuzz_http.py`` once those packages land:
request bodies, model names and path parameters must get a 4xx with one-line JSON error, nothing
registered, nothing written outside the store.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support.seeding import seed_version

from loraledger.registry import Registry
from loraledger.settings import Settings

settings.register_profile(
    "fuzz",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("fuzz")


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    registry = Settings.load().open_registry()
    seed_version(registry, "ip", weights=b"one")
    yield registry
