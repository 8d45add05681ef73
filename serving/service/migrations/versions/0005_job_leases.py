"""An owner and a lease per job (a job whose replica died is taken over by another).

Revision ID: 0005
Revises: 0004

Jobs from before this revision have none: an active job without a lease counts
as orphaned once it has not been updated for a day.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("owner", sa.String(64), nullable=True))
        jobs.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        jobs.create_index("ix_jobs_lease_until", ["lease_until"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_index("ix_jobs_lease_until")
        jobs.drop_column("lease_until")
        jobs.drop_column("owner")
