"""Finding the base a version was trained on, and making sure it is still the same model."""

from loraledger.fingerprints import fingerprint
from loraledger.schemas.errors import Conflict
from loraledger.schemas.jobs import BaseSource
from loraledger.schemas.records import BaseModelRecord
from loraledger.settings import Settings


def recorded_base(settings: Settings, base: BaseModelRecord, *, allow_pickle: bool = False) -> BaseSource:
    """A local folder holding ``base``; refuses one whose weights no longer match the record (a
    rebuilt built-in, an edited local folder, a Hub revision that moved)."""
    from loraledger.trainer.models import resolve_base

    source = resolve_base(
        base.model_id, cache_dir=settings.cache_dir, revision=base.revision, allow_pickle=allow_pickle
    )
    found = fingerprint(source, settings.cache_dir)
    if not found.same_model(base):
        raise Conflict(
            f"the base {base.model_id} found at {source.path} is not the one recorded "
            f"(weights {found.weights_digest or found.revision} vs {base.weights_digest or base.revision})"
        )
    return source
