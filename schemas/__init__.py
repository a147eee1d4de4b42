"""Plain, validated data shapes shared by the registry, the trainer and the CLI.

Imports neither torch, sqlalchemy nor click: everything here is safe to load in the fastest paths.
The pydantic-backed names are loaded on first use (PEP 562), so that importing one submodule, e.g.
``loraledger.schemas.errors``, does not build every spec.
"""

from typing import TYPE_CHECKING, Any

from loraledger.schemas.errors import Conflict, Corrupt, InvalidInput, LedgerError, NotFound

if TYPE_CHECKING:
    from loraledger.schemas.names import Ref, check_alias, check_name
    from loraledger.schemas.specs import EvalSpec, GateSpec, LoraSpec, Recipe, TrainSpec

_LAZY = {
    "Ref": "names",
    "check_alias": "names",
    "check_name": "names",
    "EvalSpec": "specs",
    "GateSpec": "specs",
    "LoraSpec": "specs",
    "Recipe": "specs",
    "TrainSpec": "specs",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"loraledger.schemas.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'loraledger.schemas' has no attribute {name!r}")


__all__ = [
    "Conflict",
    "Corrupt",
    "EvalSpec",
    "GateSpec",
    "InvalidInput",
    "LedgerError",
    "LoraSpec",
    "NotFound",
    "Recipe",
    "Ref",
    "TrainSpec",
    "check_alias",
    "check_name",
]
