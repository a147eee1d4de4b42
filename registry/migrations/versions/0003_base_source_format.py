"""base_model.source_format: how the base's weights were stored (a GGUF file and its quantization)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A base loaded from a GGUF file is dequantized to train on; the record says so ('GGUF Q4_1'), because an
adapter trained on a Q4_1 file's weights was trained on slightly different weights than the fp16 model
of the same name. Existing rows (model folders) stay NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not batch mode: a batch rebuild of base_model (copy, drop, rename) fails on SQLite
# once versions and scores reference it (foreign keys are on); SQLite >= 3.35 adds and drops a column in
# place, as PostgreSQL does.


def upgrade() -> None:
    op.add_column("base_model", sa.Column("source_format", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("base_model", "source_format")
