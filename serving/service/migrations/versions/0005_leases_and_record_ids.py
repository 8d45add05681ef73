"""A unique id per check (a check spooled while the database was down is written once), and an owner and a lease
per job (a job whose replica died is taken over by another).

Revision ID: 0005
Revises: 0003

Checks and jobs from before this revision have neither: their record id stays
NULL, and an active job without a lease counts as orphaned once it has not
been updated for a day.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checks") as checks:
        checks.add_column(sa.Column("record_id", sa.String(32), nullable=True))
        checks.create_index("ix_checks_record_id", ["record_id"], unique=True)
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("owner", sa.String(64), nullable=True))
        jobs.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        jobs.create_index("ix_jobs_lease_until", ["lease_until"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_index("ix_jobs_lease_until")
        jobs.drop_column("lease_until")
        jobs.drop_column("owner")
    with op.batch_alter_table("checks") as checks:
        checks.drop_index("ix_checks_record_id")
        checks.drop_column("record_id")
