"""The registry's tables (sqlmodel). Rows stay inside store sessions; see ``store.py``.

No ``from __future__ import annotations`` here: sqlmodel reads the annotations at class creation.
Versions are append-only: nothing updates a version row after its insert, which is what makes a
registered version immutable, and a trigger (created by migration 0001) refuses an UPDATE of a version
row on SQLite and PostgreSQL alike. Mutable state (aliases) lives in its own table with an event log.
Closed vocabularies (version kind, dataset role) are CHECK constraints, so a row written by hand or by
another tool cannot hold a value the records would reject on the way out.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def _utc_column(**kwargs: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=False, **kwargs))


class AdapterRow(SQLModel, table=True):
    __tablename__ = "adapter"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    max_regression: float = 0.05
    created_at: datetime = _utc_column()


class BaseModelRow(SQLModel, table=True):
    __tablename__ = "base_model"

    id: int | None = Field(default=None, primary_key=True)
    # model_id, revision and the digests joined: one unique key that treats NULLs as values, which
    # a composite unique constraint would not (NULLs are distinct there in SQLite and PostgreSQL).
    fingerprint: str = Field(unique=True, max_length=600)
    model_id: str = Field(max_length=400)
    revision: str | None = Field(default=None, max_length=80)
    config_digest: str = Field(max_length=80)
    weights_digest: str | None = Field(default=None, max_length=80)
    # 'GGUF Q4_1' for a base loaded from a GGUF file; NULL for a model folder (and rows before 0003).
    source_format: str | None = Field(default=None, max_length=40)


class VersionRow(SQLModel, table=True):
    __tablename__ = "version"
    __table_args__ = (
        # Also the index behind every "versions of adapter X" and "X@N" lookup.
        UniqueConstraint("adapter_id", "number", name="uq_version_adapter_number"),
        CheckConstraint("kind IN ('train', 'stack', 'merge', 'import')", name="ck_version_kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    adapter_id: int = Field(foreign_key="adapter.id")
    number: int
    kind: str = Field(max_length=16)
    parent_id: int | None = Field(default=None, foreign_key="version.id", index=True)
    base_model_id: int = Field(foreign_key="base_model.id")
    lora: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    training: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    seed: int | None = None
    libraries: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    train_tokens: int | None = None
    final_loss: float | None = None
    artifact_digest: str = Field(max_length=80)
    created_at: datetime = _utc_column()
    created_by: str = Field(max_length=200)
    host: str = Field(max_length=200)
    note: str | None = None


class DatasetRow(SQLModel, table=True):
    __tablename__ = "dataset"

    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(unique=True, max_length=80)
    format: str = Field(max_length=32)
    rows: int
    tokens: int | None = None
    source: str | None = None
    blob: str | None = Field(default=None, max_length=80)
    created_at: datetime = _utc_column()


class VersionDatasetRow(SQLModel, table=True):
    __tablename__ = "version_dataset"
    __table_args__ = (
        UniqueConstraint("version_id", "dataset_id", "role", name="uq_version_dataset_role"),
        CheckConstraint("role IN ('train', 'eval', 'replay')", name="ck_version_dataset_role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="version.id", index=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    role: str = Field(max_length=16)
    rows: int
    tokens: int | None = None
    label: str | None = Field(default=None, max_length=200)


class EvalResultRow(SQLModel, table=True):
    """A score of a version, or of a bare base model (version_id NULL), on one dataset, in one scoring
    setting (how the model was loaded: see trainer/evaluate.py ``scoring_setting``)."""

    __tablename__ = "eval_result"
    # The base-score cache is looked up by (base, dataset, metric, setting).
    __table_args__ = (Index("ix_eval_result_base", "base_model_id", "dataset_id", "metric", "setting"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int | None = Field(default=None, foreign_key="version.id", index=True)
    base_model_id: int | None = Field(default=None, foreign_key="base_model.id")
    dataset_id: int = Field(foreign_key="dataset.id")
    metric: str = Field(max_length=100)
    value: float
    # Rows from before migration 0002 read 'unrecorded' (schemas.records.UNRECORDED).
    setting: str = Field(max_length=100, sa_column_kwargs={"server_default": "unrecorded"})
    label: str | None = Field(default=None, max_length=200)
    created_at: datetime = _utc_column()


class AliasRow(SQLModel, table=True):
    __tablename__ = "alias"
    __table_args__ = (UniqueConstraint("adapter_id", "name", name="uq_alias_adapter_name"),)

    id: int | None = Field(default=None, primary_key=True)
    adapter_id: int = Field(foreign_key="adapter.id", index=True)
    name: str = Field(max_length=100)
    version_id: int = Field(foreign_key="version.id", index=True)


class AliasEventRow(SQLModel, table=True):
    __tablename__ = "alias_event"

    id: int | None = Field(default=None, primary_key=True)
    adapter_id: int = Field(foreign_key="adapter.id", index=True)
    alias: str = Field(max_length=100)
    from_version_id: int | None = Field(default=None, foreign_key="version.id")
    to_version_id: int | None = Field(default=None, foreign_key="version.id")
    reason: str | None = None
    created_by: str = Field(max_length=200)
    created_at: datetime = _utc_column()


class VersionInputRow(SQLModel, table=True):
    """An input of a stacked or merged version, in order, with its weight."""

    __tablename__ = "version_input"
    __table_args__ = (UniqueConstraint("version_id", "position", name="uq_version_input_position"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="version.id")
    input_version_id: int = Field(foreign_key="version.id")
    position: int
    weight: float


class SuiteEntryRow(SQLModel, table=True):
    __tablename__ = "suite_entry"
    __table_args__ = (UniqueConstraint("adapter_id", "dataset_id", name="uq_suite_adapter_dataset"),)

    id: int | None = Field(default=None, primary_key=True)
    adapter_id: int = Field(foreign_key="adapter.id", index=True)
    dataset_id: int = Field(foreign_key="dataset.id")
    label: str = Field(max_length=200)
    role: str = Field(max_length=16)
    added_by_version_id: int | None = Field(default=None, foreign_key="version.id")


class PublicationRow(SQLModel, table=True):
    __tablename__ = "publication"

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="version.id", index=True)
    kind: str = Field(max_length=16)
    target: str
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _utc_column()
    created_by: str = Field(max_length=200)
