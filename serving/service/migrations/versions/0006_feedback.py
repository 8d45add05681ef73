"""Feedback on verdicts, kept media and input statistics (issue 45): each check gets an opaque `check_id` (what
users see instead of the row's number, and the key under which a spooled check is written once), the user's label
and note, where its upload is kept and until when, when it was exported to a span, and the per-face statistics of
what it analysed.

Revision ID: 0006
Revises: 0005

Checks made before this revision get a random `check_id` here.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("check_id", sa.String(32)),
    ("input_stats", sa.Text),
    ("feedback_label", sa.String(8)),
    ("feedback_note", sa.String(1024)),
    ("feedback_at", sa.DateTime(timezone=True)),
    ("media_uri", sa.String(1024)),
    ("media_expires_at", sa.DateTime(timezone=True)),
    ("exported_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("checks") as checks:
        for name, kind in _COLUMNS:
            checks.add_column(sa.Column(name, kind, nullable=True))
    connection = op.get_bind()
    table = sa.table("checks", sa.column("id", sa.Integer), sa.column("check_id", sa.String(32)))
    for (row_id,) in connection.execute(sa.select(table.c.id)).all():
        connection.execute(table.update().where(table.c.id == row_id).values(check_id=secrets.token_hex(16)))
    with op.batch_alter_table("checks") as checks:
        checks.create_unique_constraint("uq_checks_check_id", ["check_id"])
        checks.create_index("ix_checks_feedback_label", ["feedback_label"])


def downgrade() -> None:
    with op.batch_alter_table("checks") as checks:
        checks.drop_index("ix_checks_feedback_label")
        checks.drop_constraint("uq_checks_check_id", type_="unique")
        for name, _ in reversed(_COLUMNS):
            checks.drop_column(name)
