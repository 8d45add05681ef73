"""The history of checks: one row per analysed or refused file.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_name", sa.String(512), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("fake_probability", sa.Float, nullable=True),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("model_version", sa.BigInteger, nullable=True),
        sa.Column("error", sa.String(1024), nullable=True),
    )
    op.create_index("ix_checks_checked_at", "checks", ["checked_at"])


def downgrade() -> None:
    op.drop_index("ix_checks_checked_at", table_name="checks")
    op.drop_table("checks")
