"""eval_result.setting: how the model was loaded for each score

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Scores made in different settings (4-bit against fp32 weights, bf16 against fp32 compute, another
window) are not comparable. Rows written before this column existed get 'unrecorded': they are never
compared with scores of a known setting, and whatever needs such a score computes it again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NOT NULL with a server default: SQLite adds it in place (no table rebuild), and PostgreSQL fills
    # the existing rows in the same statement.
    with op.batch_alter_table("eval_result", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("setting", sa.String(length=100), server_default="unrecorded", nullable=False)
        )
        batch_op.drop_index("ix_eval_result_base")
        batch_op.create_index(
            "ix_eval_result_base", ["base_model_id", "dataset_id", "metric", "setting"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("eval_result", schema=None) as batch_op:
        batch_op.drop_index("ix_eval_result_base")
        batch_op.create_index("ix_eval_result_base", ["base_model_id", "dataset_id", "metric"], unique=False)
        batch_op.drop_column("setting")
