"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "adapter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("max_regression", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "base_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=600), nullable=False),
        sa.Column("model_id", sa.String(length=400), nullable=False),
        sa.Column("revision", sa.String(length=80), nullable=True),
        sa.Column("config_digest", sa.String(length=80), nullable=False),
        sa.Column("weights_digest", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )
    op.create_table(
        "dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("blob", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_table(
        "version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adapter_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("base_model_id", sa.Integer(), nullable=False),
        sa.Column("lora", sa.JSON(), nullable=False),
        sa.Column("training", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("libraries", sa.JSON(), nullable=False),
        sa.Column("train_tokens", sa.Integer(), nullable=True),
        sa.Column("final_loss", sa.Float(), nullable=True),
        sa.Column("artifact_digest", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["base_model_id"],
            ["base_model.id"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("adapter_id", "number", name="uq_version_adapter_number"),
        sa.CheckConstraint("kind IN ('train', 'stack', 'merge', 'import')", name="ck_version_kind"),
    )
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_version_parent_id"), ["parent_id"], unique=False)
    _refuse_version_updates()

    op.create_table(
        "alias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adapter_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("adapter_id", "name", name="uq_alias_adapter_name"),
    )
    with op.batch_alter_table("alias", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alias_adapter_id"), ["adapter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alias_version_id"), ["version_id"], unique=False)

    op.create_table(
        "alias_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adapter_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("from_version_id", sa.Integer(), nullable=True),
        sa.Column("to_version_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["from_version_id"],
            ["version.id"],
        ),
        sa.ForeignKeyConstraint(
            ["to_version_id"],
            ["version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alias_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alias_event_adapter_id"), ["adapter_id"], unique=False)

    op.create_table(
        "eval_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("base_model_id", sa.Integer(), nullable=True),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_model_id"],
            ["base_model.id"],
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("eval_result", schema=None) as batch_op:
        batch_op.create_index("ix_eval_result_base", ["base_model_id", "dataset_id", "metric"], unique=False)
        batch_op.create_index(batch_op.f("ix_eval_result_version_id"), ["version_id"], unique=False)

    op.create_table(
        "publication",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("publication", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_publication_version_id"), ["version_id"], unique=False)

    op.create_table(
        "suite_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("adapter_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("added_by_version_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["added_by_version_id"],
            ["version.id"],
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("adapter_id", "dataset_id", name="uq_suite_adapter_dataset"),
    )
    with op.batch_alter_table("suite_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suite_entry_adapter_id"), ["adapter_id"], unique=False)

    op.create_table(
        "version_dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "dataset_id", "role", name="uq_version_dataset_role"),
        sa.CheckConstraint("role IN ('train', 'eval', 'replay')", name="ck_version_dataset_role"),
    )
    with op.batch_alter_table("version_dataset", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_version_dataset_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_version_dataset_version_id"), ["version_id"], unique=False)

    op.create_table(
        "version_input",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("input_version_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["input_version_id"],
            ["version.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "position", name="uq_version_input_position"),
    )


def downgrade() -> None:
    op.drop_table("version_input")
    with op.batch_alter_table("version_dataset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_version_dataset_version_id"))
        batch_op.drop_index(batch_op.f("ix_version_dataset_dataset_id"))

    op.drop_table("version_dataset")
    with op.batch_alter_table("suite_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suite_entry_adapter_id"))

    op.drop_table("suite_entry")
    with op.batch_alter_table("publication", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_publication_version_id"))

    op.drop_table("publication")
    with op.batch_alter_table("eval_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_result_version_id"))
        batch_op.drop_index("ix_eval_result_base")

    op.drop_table("eval_result")
    with op.batch_alter_table("alias_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alias_event_adapter_id"))

    op.drop_table("alias_event")
    with op.batch_alter_table("alias", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alias_version_id"))
        batch_op.drop_index(batch_op.f("ix_alias_adapter_id"))

    op.drop_table("alias")
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_version_parent_id"))

    _allow_version_updates()
    op.drop_table("version")
    op.drop_table("dataset")
    op.drop_table("base_model")
    op.drop_table("adapter")


# A registered version is immutable: the code never updates a version row, and these triggers make the
# database refuse it too (a stray script, a future bug). Alembic's autogenerate does not see triggers,
# so they live only here. A later migration that rebuilds the version table in SQLite's batch mode
# (copy, drop, rename) drops the trigger with the old table and must create it again.
IMMUTABLE_MESSAGE = "versions are immutable once registered"


def _refuse_version_updates() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER version_immutable BEFORE UPDATE ON version "
            f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE_MESSAGE}'); END"
        )
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION version_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{IMMUTABLE_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER version_immutable BEFORE UPDATE ON version "
            "FOR EACH ROW EXECUTE FUNCTION version_immutable()"
        )


def _allow_version_updates() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS version_immutable")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS version_immutable ON version")
        op.execute("DROP FUNCTION IF EXISTS version_immutable()")
