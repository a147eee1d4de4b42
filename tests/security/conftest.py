"""The fixtures of every hostile-input test: ``support.refusals`` (a registry holding ``ip@1`` on a
small local base, and the ``refused`` runner)."""

from support.refusals import base_record, data, local_base, refused, registry

__all__ = ["base_record", "data", "local_base", "refused", "registry"]
