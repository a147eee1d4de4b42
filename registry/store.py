"""The registry's persistence: one narrow interface, one SQL implementation for SQLite and PostgreSQL.

Rows are turned into plain records (``loraledger.schemas.records``) before they leave a session, so
nothing outside this module holds a database handle. Rules (what may be registered, how refs resolve,
what the gate allows) live in ``ledger.py``; this module only stores and fetches.
"""

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from sqlalchemy import Engine, Executable, delete, func, text, true
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from loraledger.registry.engine import WRITE
from loraledger.registry.errors import Conflict, NotFound, StoreUnavailable
from loraledger.registry.queries import (
    alias_event_record,
    dataset_record,
    dataset_uses,
    eval_record,
    load_summaries,
    load_versions,
    utc,
)
from loraledger.registry.tables import (
    AdapterRow,
    AliasEventRow,
    AliasRow,
    BaseModelRow,
    DatasetRow,
    EvalResultRow,
    PublicationRow,
    SuiteEntryRow,
    VersionDatasetRow,
    VersionInputRow,
    VersionRow,
)
from loraledger.schemas.records import (
    AdapterRecord,
    AliasEvent,
    BaseModelRecord,
    DatasetRecord,
    DatasetUse,
    EvalResult,
    NewDataset,
    NewEval,
    NewVersion,
    Publication,
    SuiteEntry,
    VersionRecord,
    VersionSummary,
)

P = ParamSpec("P")
T = TypeVar("T")
WRITE_ATTEMPTS = 8


class Store(Protocol):
    """What the registry needs from a database."""

    def adapters(self) -> list[AdapterRecord]: ...
    def versions(self, name: str | None = None) -> list[VersionRecord]: ...
    def summaries(self, name: str | None = None) -> list[VersionSummary]: ...
    def version(self, name: str, number: int) -> VersionRecord: ...
    def numbers(self, name: str) -> list[int]: ...
    def aliases(self, name: str) -> dict[str, int]: ...
    def register(
        self,
        new: NewVersion,
        *,
        promote: bool,
        reason: str | None,
        who: str,
        host: str,
        only_if_current: tuple[int | None] | None = None,
    ) -> int: ...
    def move_alias(
        self, name: str, alias: str, number: int | None, *, reason: str | None, who: str, expect: int | None
    ) -> AliasEvent: ...
    def alias_events(self, name: str) -> list[AliasEvent]: ...
    def datasets(self) -> list[DatasetRecord]: ...
    def dataset(self, digest: str) -> DatasetRecord | None: ...
    def dataset_uses(self, name: str | None = None) -> list[DatasetUse]: ...
    def eval_results(self, name: str) -> list[EvalResult]: ...
    def add_evals(self, name: str, number: int, evals: Sequence[NewEval]) -> None: ...
    def base_evals(self, base: BaseModelRecord) -> list[EvalResult]: ...
    def add_base_evals(self, base: BaseModelRecord, evals: Sequence[NewEval]) -> None: ...
    def suite(self, name: str) -> list[SuiteEntry]: ...
    def add_suite_entry(
        self, name: str, dataset: NewDataset, *, label: str, role: str, version: int | None
    ) -> SuiteEntry: ...
    def set_max_regression(self, name: str, value: float) -> None: ...
    def add_publication(self, name: str, number: int, publication: Publication) -> None: ...
    def check_writable(self) -> None: ...


def _retry_when_busy(method: Callable[P, T]) -> Callable[P, T]:
    """Retry a whole write transaction when the database is locked or a unique race was lost.

    SQLite's busy timeout covers most waits; this covers the rest (a lock held past the timeout, a
    PostgreSQL serialisation failure, two writers inserting the same new dataset at once).
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return method(*args, **kwargs)
            except (OperationalError, IntegrityError) as exc:
                transient = isinstance(exc, IntegrityError) or _is_busy(exc)
                if not transient or attempt == WRITE_ATTEMPTS - 1:
                    if isinstance(exc, OperationalError):
                        raise StoreUnavailable(f"registry database error: {_first_line(exc)}") from exc
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    return wrapper


def _is_busy(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return any(word in text for word in ("locked", "busy", "could not serialize", "deadlock"))


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def now() -> datetime:
    return datetime.now(UTC)


class SQLStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write_engine = engine.execution_options(**WRITE)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._write_engine) as session, session.begin():
            yield session

    @_retry_when_busy
    def check_writable(self) -> None:
        """A write that changes nothing, rolled back: fails as a real write would (read-only file,
        folder or role) without leaving a trace."""
        with Session(self._write_engine) as session:
            transaction = session.begin()
            try:
                session.execute(text("UPDATE alembic_version SET version_num = version_num"))
            finally:
                transaction.rollback()

    # ---- adapters -----------------------------------------------------------------------------

    def adapters(self) -> list[AdapterRecord]:
        with self._read() as session:
            counts = dict(
                session.execute(
                    select(col(VersionRow.adapter_id), func.count(col(VersionRow.id))).group_by(
                        col(VersionRow.adapter_id)
                    )
                ).all()
            )
            current = dict(
                session.execute(
                    select(col(AliasRow.adapter_id), col(VersionRow.number))
                    .join(VersionRow, col(AliasRow.version_id) == col(VersionRow.id))
                    .where(col(AliasRow.name) == "current")
                ).all()
            )
            return [
                AdapterRecord(
                    name=row.name,
                    created_at=utc(row.created_at),
                    max_regression=row.max_regression,
                    versions=counts.get(row.id, 0),
                    current=current.get(row.id),
                )
                for row in session.scalars(select(AdapterRow).order_by(col(AdapterRow.name)))
            ]

    def set_max_regression(self, name: str, value: float) -> None:
        with self._write() as session:
            _adapter(session, name).max_regression = value

    # ---- versions -----------------------------------------------------------------------------

    def versions(self, name: str | None = None) -> list[VersionRecord]:
        with self._read() as session:
            where = true() if name is None else col(AdapterRow.name) == name
            return load_versions(session, where, full=False)

    def summaries(self, name: str | None = None) -> list[VersionSummary]:
        with self._read() as session:
            return load_summaries(session, name)

    def version(self, name: str, number: int) -> VersionRecord:
        with self._read() as session:
            found = load_versions(
                session, (col(AdapterRow.name) == name) & (col(VersionRow.number) == number), full=True
            )
            if not found:
                raise NotFound(f"{name}@{number} does not exist")
            return found[0]

    def numbers(self, name: str) -> list[int]:
        """The version numbers of ``name``, ascending (empty for an unknown adapter): refs resolve and
        explain themselves from these without loading any version."""
        with self._read() as session:
            return list(
                session.scalars(
                    select(col(VersionRow.number))
                    .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
                    .where(col(AdapterRow.name) == name)
                    .order_by(col(VersionRow.number))
                )
            )

    def aliases(self, name: str) -> dict[str, int]:
        with self._read() as session:
            rows = session.execute(
                select(col(AliasRow.name), col(VersionRow.number))
                .join(VersionRow, col(AliasRow.version_id) == col(VersionRow.id))
                .join(AdapterRow, col(AliasRow.adapter_id) == col(AdapterRow.id))
                .where(col(AdapterRow.name) == name)
            ).all()
            return {alias: number for alias, number in rows}

    @_retry_when_busy
    def register(
        self,
        new: NewVersion,
        *,
        promote: bool,
        reason: str | None,
        who: str,
        host: str,
        only_if_current: tuple[int | None] | None = None,
    ) -> int:
        """Insert a version with its links; with ``promote``, make it current — unless
        ``only_if_current`` holds the current version number the caller started from and current has
        moved since (a rollback during a long training run must not be silently undone)."""
        with self._write() as session:
            _insert_ignore(session, AdapterRow, {"name": new.name, "created_at": now()}, ["name"])
            # Lock the adapter row: on PostgreSQL this serialises numbering per adapter; on SQLite the
            # whole database is already locked by BEGIN IMMEDIATE.
            adapter = session.scalars(
                select(AdapterRow).where(col(AdapterRow.name) == new.name).with_for_update()
            ).one()
            assert adapter.id is not None
            number = (
                session.scalar(
                    select(func.max(col(VersionRow.number))).where(col(VersionRow.adapter_id) == adapter.id)
                )
                or 0
            ) + 1
            parent_id = _version_id(session, new.parent) if new.parent else None
            row = VersionRow(
                adapter_id=adapter.id,
                number=number,
                kind=new.kind,
                parent_id=parent_id,
                base_model_id=_base_model_id(session, new.base),
                lora=new.lora,
                training=new.training,
                seed=new.seed,
                libraries=new.libraries,
                train_tokens=new.train_tokens,
                final_loss=new.final_loss,
                artifact_digest=new.artifact_digest,
                created_at=now(),
                created_by=who,
                host=host,
                note=new.note,
            )
            session.add(row)
            session.flush()
            assert row.id is not None
            for use in new.datasets:
                session.add(
                    VersionDatasetRow(
                        version_id=row.id,
                        dataset_id=_dataset_id(session, use.dataset),
                        role=use.role,
                        rows=use.rows,
                        tokens=use.tokens,
                        label=use.label,
                    )
                )
            for position, (ref, weight) in enumerate(new.inputs):
                session.add(
                    VersionInputRow(
                        version_id=row.id,
                        input_version_id=_version_id(session, ref),
                        position=position,
                        weight=weight,
                    )
                )
            _add_evals(session, new.evals, version_id=row.id)
            if promote and (
                only_if_current is None or _current_number(session, adapter.id) == only_if_current[0]
            ):
                _set_alias(session, adapter.id, "current", row.id, reason=reason, who=who)
            return number

    # ---- aliases ------------------------------------------------------------------------------

    @_retry_when_busy
    def move_alias(
        self, name: str, alias: str, number: int | None, *, reason: str | None, who: str, expect: int | None
    ) -> AliasEvent:
        """Point ``alias`` at ``number`` (None deletes it). ``expect`` guards against a lost update:
        when given, the alias must still point where the caller last saw it."""
        with self._write() as session:
            # The adapter row lock makes the read of the alias below and its move one step on
            # PostgreSQL (SQLite's BEGIN IMMEDIATE already holds the whole database): two commands
            # that saw the same position cannot both move it.
            adapter = _adapter(session, name, lock=True)
            assert adapter.id is not None
            existing = session.scalars(
                select(AliasRow).where(col(AliasRow.adapter_id) == adapter.id, col(AliasRow.name) == alias)
            ).first()
            if expect is not None:
                seen = _number_of(session, existing.version_id) if existing else None
                if seen != expect:
                    raise Conflict(
                        f"{name}@{alias} moved to version {seen} while this command ran (expected {expect}); "
                        "look at `adapters history` and try again"
                    )
            target = _version_id(session, f"{name}@{number}") if number is not None else None
            event = _set_alias(session, adapter.id, alias, target, reason=reason, who=who)
            return _alias_event(session, name, event)

    def alias_events(self, name: str) -> list[AliasEvent]:
        with self._read() as session:
            adapter = _adapter(session, name)
            source, target = aliased(VersionRow), aliased(VersionRow)
            rows = session.execute(
                select(AliasEventRow, col(source.number), col(target.number))
                .outerjoin(source, col(AliasEventRow.from_version_id) == col(source.id))
                .outerjoin(target, col(AliasEventRow.to_version_id) == col(target.id))
                .where(col(AliasEventRow.adapter_id) == adapter.id)
                .order_by(col(AliasEventRow.id))
            ).all()
            return [alias_event_record(name, row, before, after) for row, before, after in rows]

    # ---- datasets -----------------------------------------------------------------------------

    def datasets(self) -> list[DatasetRecord]:
        with self._read() as session:
            return [
                dataset_record(row)
                for row in session.scalars(select(DatasetRow).order_by(col(DatasetRow.id)))
            ]

    def dataset(self, digest: str) -> DatasetRecord | None:
        with self._read() as session:
            row = session.scalars(select(DatasetRow).where(col(DatasetRow.digest) == digest)).first()
            return dataset_record(row) if row else None

    def dataset_uses(self, name: str | None = None) -> list[DatasetUse]:
        with self._read() as session:
            where = true() if name is None else col(AdapterRow.name) == name
            uses = dataset_uses(session, where)
            return [use for version_uses in uses.values() for use in version_uses]

    # ---- evals --------------------------------------------------------------------------------

    def eval_results(self, name: str) -> list[EvalResult]:
        with self._read() as session:
            rows = session.execute(
                select(EvalResultRow, col(DatasetRow.digest), col(VersionRow.number))
                .join(DatasetRow, col(EvalResultRow.dataset_id) == col(DatasetRow.id))
                .join(VersionRow, col(EvalResultRow.version_id) == col(VersionRow.id))
                .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
                .where(col(AdapterRow.name) == name)
                .order_by(col(EvalResultRow.id))
            ).all()
            return [eval_record(row, digest, f"{name}@{number}") for row, digest, number in rows]

    @_retry_when_busy
    def add_evals(self, name: str, number: int, evals: Sequence[NewEval]) -> None:
        with self._write() as session:
            _add_evals(session, evals, version_id=_version_id(session, f"{name}@{number}"))

    def base_evals(self, base: BaseModelRecord) -> list[EvalResult]:
        with self._read() as session:
            rows = session.execute(
                select(EvalResultRow, col(DatasetRow.digest))
                .join(DatasetRow, col(EvalResultRow.dataset_id) == col(DatasetRow.id))
                .join(BaseModelRow, col(EvalResultRow.base_model_id) == col(BaseModelRow.id))
                .where(col(BaseModelRow.fingerprint) == _fingerprint(base))
                .order_by(col(EvalResultRow.id))
            ).all()
            return [eval_record(row, digest, None) for row, digest in rows]

    @_retry_when_busy
    def add_base_evals(self, base: BaseModelRecord, evals: Sequence[NewEval]) -> None:
        with self._write() as session:
            _add_evals(session, evals, base_model_id=_base_model_id(session, base))

    # ---- suites -------------------------------------------------------------------------------

    def suite(self, name: str) -> list[SuiteEntry]:
        with self._read() as session:
            adapter = _adapter(session, name)
            rows = session.execute(
                select(SuiteEntryRow, DatasetRow)
                .join(DatasetRow, col(SuiteEntryRow.dataset_id) == col(DatasetRow.id))
                .where(col(SuiteEntryRow.adapter_id) == adapter.id)
                .order_by(col(SuiteEntryRow.id))
            ).all()
            return [_suite_entry(session, name, entry, dataset) for entry, dataset in rows]

    @_retry_when_busy
    def add_suite_entry(
        self, name: str, dataset: NewDataset, *, label: str, role: str, version: int | None
    ) -> SuiteEntry:
        with self._write() as session:
            _insert_ignore(session, AdapterRow, {"name": name, "created_at": now()}, ["name"])
            adapter = _adapter(session, name)
            dataset_id = _dataset_id(session, dataset)
            entry = session.scalars(
                select(SuiteEntryRow).where(
                    col(SuiteEntryRow.adapter_id) == adapter.id, col(SuiteEntryRow.dataset_id) == dataset_id
                )
            ).first()
            if entry is None:
                assert adapter.id is not None
                entry = SuiteEntryRow(
                    adapter_id=adapter.id,
                    dataset_id=dataset_id,
                    label=label,
                    role=role,
                    added_by_version_id=_version_id(session, f"{name}@{version}") if version else None,
                )
                session.add(entry)
                session.flush()
            return _suite_entry(session, name, entry, session.get_one(DatasetRow, dataset_id))

    # ---- publications and artifacts -----------------------------------------------------------

    @_retry_when_busy
    def add_publication(self, name: str, number: int, publication: Publication) -> None:
        with self._write() as session:
            session.add(
                PublicationRow(
                    version_id=_version_id(session, f"{name}@{number}"),
                    kind=publication.kind,
                    target=publication.target,
                    details=publication.details,
                    created_at=publication.created_at,
                    created_by=publication.created_by,
                )
            )


# ---- helpers that run inside a session ---------------------------------------------------------


def _insert_ignore(session: Session, table: Any, values: dict[str, Any], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, so concurrent creators of the same row both succeed."""
    # Imported here: the PostgreSQL dialect module alone costs a tenth of `adapters list`'s start.
    statement: Executable
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        statement = postgresql_insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    session.execute(statement)


def _adapter(session: Session, name: str, *, lock: bool = False) -> AdapterRow:
    query = select(AdapterRow).where(col(AdapterRow.name) == name)
    adapter = session.scalars(query.with_for_update() if lock else query).first()
    if adapter is None:
        known = session.scalars(select(col(AdapterRow.name)).order_by(col(AdapterRow.name)).limit(20)).all()
        hint = f"; known adapters: {', '.join(known)}" if known else "; the registry is empty"
        raise NotFound(f"no adapter named {name!r}{hint}")
    return adapter


def _version_id(session: Session, ref: str) -> int:
    name, _, number = ref.rpartition("@")
    found = session.scalar(
        select(col(VersionRow.id))
        .join(AdapterRow, col(VersionRow.adapter_id) == col(AdapterRow.id))
        .where(col(AdapterRow.name) == name, col(VersionRow.number) == int(number))
    )
    if found is None:
        raise NotFound(f"{ref} does not exist")
    return found


def _current_number(session: Session, adapter_id: int) -> int | None:
    current = session.scalar(
        select(col(VersionRow.number))
        .join(AliasRow, col(AliasRow.version_id) == col(VersionRow.id))
        .where(col(AliasRow.adapter_id) == adapter_id, col(AliasRow.name) == "current")
    )
    return current


def _number_of(session: Session, version_id: int) -> int:
    return session.get_one(VersionRow, version_id).number


def _fingerprint(base: BaseModelRecord) -> str:
    return "|".join([base.model_id, base.revision or "", base.config_digest, base.weights_digest or ""])


def _base_model_id(session: Session, base: BaseModelRecord) -> int:
    fingerprint = _fingerprint(base)
    _insert_ignore(session, BaseModelRow, {"fingerprint": fingerprint, **base.model_dump()}, ["fingerprint"])
    found = session.scalar(select(col(BaseModelRow.id)).where(col(BaseModelRow.fingerprint) == fingerprint))
    assert found is not None
    return found


def _dataset_id(session: Session, dataset: NewDataset) -> int:
    _insert_ignore(session, DatasetRow, {**dataset.model_dump(), "created_at": now()}, ["digest"])
    row = session.scalars(select(DatasetRow).where(col(DatasetRow.digest) == dataset.digest)).one()
    if row.blob is None and dataset.blob is not None:
        row.blob = dataset.blob  # a later registration may bring the copy an earlier one lacked
    if row.tokens is None and dataset.tokens is not None:
        row.tokens = dataset.tokens
    assert row.id is not None
    return row.id


def _add_evals(
    session: Session,
    evals: Sequence[NewEval],
    *,
    version_id: int | None = None,
    base_model_id: int | None = None,
) -> None:
    moment = now()
    for result in evals:
        session.add(
            EvalResultRow(
                version_id=version_id,
                base_model_id=base_model_id,
                dataset_id=_dataset_id(session, result.dataset),
                metric=result.metric,
                value=result.value,
                setting=result.setting,
                label=result.label,
                created_at=moment,
            )
        )


def _set_alias(
    session: Session, adapter_id: int, alias: str, version_id: int | None, *, reason: str | None, who: str
) -> AliasEventRow:
    existing = session.scalars(
        select(AliasRow).where(col(AliasRow.adapter_id) == adapter_id, col(AliasRow.name) == alias)
    ).first()
    before = existing.version_id if existing else None
    if version_id is None:
        if existing is not None:
            session.execute(delete(AliasRow).where(col(AliasRow.id) == existing.id))
    elif existing is None:
        session.add(AliasRow(adapter_id=adapter_id, name=alias, version_id=version_id))
    else:
        existing.version_id = version_id
    event = AliasEventRow(
        adapter_id=adapter_id,
        alias=alias,
        from_version_id=before,
        to_version_id=version_id,
        reason=reason,
        created_by=who,
        created_at=now(),
    )
    session.add(event)
    session.flush()
    return event


def _alias_event(session: Session, name: str, row: AliasEventRow) -> AliasEvent:
    return alias_event_record(
        name,
        row,
        _number_of(session, row.from_version_id) if row.from_version_id else None,
        _number_of(session, row.to_version_id) if row.to_version_id else None,
    )


def _suite_entry(session: Session, name: str, entry: SuiteEntryRow, dataset: DatasetRow) -> SuiteEntry:
    added = _number_of(session, entry.added_by_version_id) if entry.added_by_version_id else None
    return SuiteEntry(
        name=name,
        label=entry.label,
        role=entry.role,
        dataset=dataset_record(dataset),
        added_by_version=added,
    )
