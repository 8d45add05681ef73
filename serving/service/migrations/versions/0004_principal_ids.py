"""Principals by id, not by name: a name reused after all its keys were revoked starts with an empty history.

Revision ID: 0004
Revises: 0003

Checks and jobs are owned by `api_keys.principal_id`. Keys made before this
revision keep their name as their principal id, so the checks and jobs they
own (recorded under the name) stay theirs; keys made after it get a random id,
shared by a name's keys only while one of them is live (rotation).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as keys:
        keys.add_column(sa.Column("principal_id", sa.String(64), nullable=True))
    op.execute("UPDATE api_keys SET principal_id = name")
    with op.batch_alter_table("api_keys") as keys:
        keys.alter_column("principal_id", existing_type=sa.String(64), nullable=False)
        keys.create_index("ix_api_keys_principal_id", ["principal_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as keys:
        keys.drop_index("ix_api_keys_principal_id")
        keys.drop_column("principal_id")
