"""API keys, and the principal that owns each check and job, for a service shared by many users.

Revision ID: 0003
Revises: 0002

Rows made before this revision have no principal: a service with keys shows
them to admins only.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("salt", sa.LargeBinary(32), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_name", "api_keys", ["name"])
    with op.batch_alter_table("checks") as checks:
        checks.add_column(sa.Column("principal", sa.String(64), nullable=True))
        checks.create_index("ix_checks_principal", ["principal"])
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("principal", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("principal")
    with op.batch_alter_table("checks") as checks:
        checks.drop_index("ix_checks_principal")
        checks.drop_column("principal")
    op.drop_index("ix_api_keys_name", table_name="api_keys")
    op.drop_table("api_keys")
