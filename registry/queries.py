"""Bulk reads: rows turned into plain records, listing-sized, in a handful of queries.

Listings read many rows: they are fetched as plain column tuples, not ORM objects (which cost ten times
more to build), and each dataset becomes one record however many versions use it. ``store.py`` calls
these inside its sessions; nothing here opens one.
"""

from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, true
from sqlalchemy import select as select_many
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from loraledger.registry.tables import (
    AdapterRow,
    AliasEventRow,
    AliasRow,
    BaseModelRow,
    DatasetRow,
    EvalResultRow,
    PublicationRow,
    VersionDatasetRow,
    VersionInputRow,
    VersionRow,
)
from loraledger.schemas.records import (
    AliasEvent,
    BaseModelRecord,
    DatasetRecord,
    DatasetUse,
    EvalResult,
    Publication,
    VersionInput,
    VersionRecord,
    VersionSummary,
)


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def alias_event_record(name: str, row: AliasEventRow, before: int | None, after: int | None) -> AliasEvent:
    return AliasEvent(
        name=name,
        alias=row.alias,
        from_version=before,
        to_version=after,
        reason=row.reason,
        created_by=row.created_by,
        created_at=utc(row.created_at),
    )


def dataset_record(row: DatasetRow) -> DatasetRecord:
    assert row.id is not None
    return dataset_record_from_columns(
        row.id, row.digest, row.format, row.rows, row.tokens, row.source, row.blob, row.created_at
    )


def eval_record(row: EvalResultRow, digest: str, ref: str | None) -> EvalResult:
    return EvalResult(
        ref=ref,
        dataset_digest=digest,
        label=row.label,
        metric=row.metric,
        value=row.value,
        setting=row.setting,
        created_at=utc(row.created_at),
    )


# Aliases of the version table are built once: SQLAlchemy memoises column adaptation per alias object.
_PARENT = aliased(VersionRow, name="parent_version")
_PARENT_ADAPTER = aliased(AdapterRow, name="parent_adapter")
_INPUT = aliased(VersionRow, name="input_version")
_INPUT_ADAPTER = aliased(AdapterRow, name="input_adapter")
_DATASET_COLUMNS = (
    col(DatasetRow.id),
    col(DatasetRow.digest),
    col(DatasetRow.format),
    col(DatasetRow.rows),
    col(DatasetRow.tokens),
    col(DatasetRow.source),
    col(DatasetRow.blob),
    col(DatasetRow.created_at),
)


def dataset_uses(session: Session, where: ColumnElement[bool]) -> dict[int, list[DatasetUse]]:
    rows = session.execute(
        select_many(
            col(VersionDatasetRow.version_id),
            col(VersionDatasetRow.role),
            col(VersionDatasetRow.rows),
            col(VersionDatasetRow.tokens),
            col(VersionDatasetRow.label),
            col(VersionRow.number),
            col(AdapterRow.name),
            *_DATASET_COLUMNS,
        )
        .join(DatasetRow, col(VersionDatasetRow.dataset_id) == col(DatasetRow.id))
        .join(VersionRow, col(VersionDatasetRow.version_id) == col(VersionRow.id))
        .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
        .where(where)
        .order_by(col(VersionDatasetRow.id))
    ).all()
    datasets: dict[int, DatasetRecord] = {}  # one record per dataset, however many versions use it
    uses: dict[int, list[DatasetUse]] = defaultdict(list)
    for version_id, role, used_rows, tokens, label, number, name, *dataset in rows:
        if dataset[0] not in datasets:
            datasets[dataset[0]] = dataset_record_from_columns(*dataset)
        uses[version_id].append(
            DatasetUse(
                ref=f"{name}@{number}",
                dataset=datasets[dataset[0]],
                role=role,
                rows=used_rows,
                tokens=tokens,
                label=label,
            )
        )
    return uses


def dataset_record_from_columns(
    _id: int,
    digest: str,
    format: str,
    rows: int,
    tokens: int | None,
    source: str | None,
    blob: str | None,
    created_at: datetime,
) -> DatasetRecord:
    return DatasetRecord(
        digest=digest,
        format=format,
        rows=rows,
        tokens=tokens,
        source=source,
        blob=blob,
        created_at=utc(created_at),
    )


def aliases_by_version(session: Session, where: ColumnElement[bool]) -> dict[int, list[str]]:
    aliases: dict[int, list[str]] = defaultdict(list)
    for version_id, alias in session.execute(
        select(col(AliasRow.version_id), col(AliasRow.name))
        .join(VersionRow, col(AliasRow.version_id) == col(VersionRow.id))
        .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
        .where(where)
        .order_by(col(AliasRow.name))
    ):
        aliases[version_id].append(alias)
    return aliases


def inputs_by_version(session: Session, where: ColumnElement[bool]) -> dict[int, list[VersionInput]]:
    inputs: dict[int, list[VersionInput]] = defaultdict(list)
    for version_id, weight, number, name in session.execute(
        select_many(
            col(VersionInputRow.version_id),
            col(VersionInputRow.weight),
            col(_INPUT.number),
            col(_INPUT_ADAPTER.name),
        )
        .join(VersionRow, col(VersionInputRow.version_id) == col(VersionRow.id))
        .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
        .join(_INPUT, col(VersionInputRow.input_version_id) == col(_INPUT.id))
        .join(_INPUT_ADAPTER, col(_INPUT.adapter_id) == col(_INPUT_ADAPTER.id))
        .where(where)
        .order_by(col(VersionInputRow.position))
    ):
        inputs[version_id].append(VersionInput(ref=f"{name}@{number}", weight=weight))
    return inputs


def load_versions(session: Session, where: ColumnElement[bool], *, full: bool) -> list[VersionRecord]:
    """Versions matching ``where`` (over version and adapter columns), with their links, in few queries."""
    rows = session.execute(
        select_many(
            col(VersionRow.id),
            col(AdapterRow.name),
            col(VersionRow.number),
            col(VersionRow.kind),
            col(_PARENT.number),
            col(_PARENT_ADAPTER.name),
            col(VersionRow.base_model_id),
            col(VersionRow.lora),
            col(VersionRow.training),
            col(VersionRow.seed),
            col(VersionRow.libraries),
            col(VersionRow.train_tokens),
            col(VersionRow.final_loss),
            col(VersionRow.artifact_digest),
            col(VersionRow.created_at),
            col(VersionRow.created_by),
            col(VersionRow.host),
            col(VersionRow.note),
        )
        .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
        .outerjoin(_PARENT, col(VersionRow.parent_id) == col(_PARENT.id))
        .outerjoin(_PARENT_ADAPTER, col(_PARENT.adapter_id) == col(_PARENT_ADAPTER.id))
        .where(where)
        .order_by(col(AdapterRow.name), col(VersionRow.number))
    ).all()
    if not rows:
        return []

    bases = {
        base.id: BaseModelRecord(
            model_id=base.model_id,
            revision=base.revision,
            config_digest=base.config_digest,
            weights_digest=base.weights_digest,
            source_format=base.source_format,
        )
        for base in session.execute(
            select_many(
                col(BaseModelRow.id),
                col(BaseModelRow.model_id),
                col(BaseModelRow.revision),
                col(BaseModelRow.config_digest),
                col(BaseModelRow.weights_digest),
                col(BaseModelRow.source_format),
            ).where(col(BaseModelRow.id).in_({row.base_model_id for row in rows}))
        )
    }

    aliases = aliases_by_version(session, where)
    inputs = inputs_by_version(session, where)
    uses = dataset_uses(session, where)
    evals: dict[int, list[EvalResult]] = defaultdict(list)
    publications: dict[int, list[Publication]] = defaultdict(list)
    if full:
        for result, digest, number, name in session.execute(
            select(EvalResultRow, col(DatasetRow.digest), col(VersionRow.number), col(AdapterRow.name))
            .join(DatasetRow, col(EvalResultRow.dataset_id) == col(DatasetRow.id))
            .join(VersionRow, col(EvalResultRow.version_id) == col(VersionRow.id))
            .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
            .where(where)
            .order_by(col(EvalResultRow.id))
        ):
            evals[result.version_id].append(eval_record(result, digest, f"{name}@{number}"))
        for publication in session.scalars(
            select(PublicationRow)
            .join(VersionRow, col(PublicationRow.version_id) == col(VersionRow.id))
            .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
            .where(where)
            .order_by(col(PublicationRow.id))
        ):
            publications[publication.version_id].append(
                Publication(
                    kind=publication.kind,
                    target=publication.target,
                    details=publication.details,
                    created_at=utc(publication.created_at),
                    created_by=publication.created_by,
                )
            )

    return [
        VersionRecord(
            name=row.name,
            number=row.number,
            kind=row.kind,
            parent=f"{row[5]}@{row[4]}" if row[4] is not None else None,
            base=bases[row.base_model_id],
            lora=row.lora,
            training=row.training,
            seed=row.seed,
            libraries=row.libraries,
            train_tokens=row.train_tokens,
            final_loss=row.final_loss,
            artifact_digest=row.artifact_digest,
            created_at=utc(row.created_at),
            created_by=row.created_by,
            host=row.host,
            note=row.note,
            aliases=aliases.get(row.id, []),
            datasets=uses.get(row.id, []),
            evals=evals.get(row.id, []),
            inputs=inputs.get(row.id, []),
            publications=publications.get(row.id, []),
        )
        for row in rows
    ]


def load_summaries(session: Session, name: str | None) -> list[VersionSummary]:
    """What a listing shows of each version, in one query plus one for aliases and one for inputs."""
    where = true() if name is None else col(AdapterRow.name) == name
    train_digest = (
        select(col(DatasetRow.digest))
        .join(VersionDatasetRow, col(VersionDatasetRow.dataset_id) == col(DatasetRow.id))
        .where(
            col(VersionDatasetRow.version_id) == col(VersionRow.id),
            col(VersionDatasetRow.role) == "train",
        )
        .order_by(col(VersionDatasetRow.id))
        .limit(1)
        .correlate(VersionRow)
        .scalar_subquery()
    )
    rows = session.execute(
        select_many(
            col(VersionRow.id),
            col(AdapterRow.name),
            col(VersionRow.number),
            col(VersionRow.kind),
            col(_PARENT.number),
            col(_PARENT_ADAPTER.name),
            col(BaseModelRow.model_id),
            train_digest,
            col(VersionRow.train_tokens),
            col(VersionRow.final_loss),
            col(VersionRow.created_at),
        )
        .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
        .join(BaseModelRow, col(VersionRow.base_model_id) == col(BaseModelRow.id))
        .outerjoin(_PARENT, col(VersionRow.parent_id) == col(_PARENT.id))
        .outerjoin(_PARENT_ADAPTER, col(_PARENT.adapter_id) == col(_PARENT_ADAPTER.id))
        .where(where)
        .order_by(col(AdapterRow.name), col(VersionRow.number))
    ).all()
    aliases = aliases_by_version(session, where)
    inputs = inputs_by_version(session, where)
    return [
        VersionSummary(
            name=name,
            number=number,
            kind=kind,
            parent=f"{parent_name}@{parent_number}" if parent_number is not None else None,
            inputs=inputs.get(version_id, []),
            base_model_id=model_id,
            train_digest=digest,
            train_tokens=tokens,
            final_loss=loss,
            created_at=utc(created_at),
            aliases=aliases.get(version_id, []),
        )
        for (
            version_id,
            name,
            number,
            kind,
            parent_number,
            parent_name,
            model_id,
            digest,
            tokens,
            loss,
            created_at,
        ) in rows
    ]
