"""Plain, validated data shapes shared by the registry, the trainer and the CLI.

Imports neither torch, sqlalchemy nor click: everything here is safe to load in the fastest paths.
"""

from loraledger.schemas.errors import Conflict, Corrupt, InvalidInput, LedgerError, NotFound
from loraledger.schemas.names import Ref, check_alias, check_name
from loraledger.schemas.specs import EvalSpec, GateSpec, LoraSpec, Recipe, TrainSpec

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
