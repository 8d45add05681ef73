"""Alembic's entry point for the history database: runs the revisions on the connection `database.migrate` opened.

Online only: the service (or `deepfake-pipeline history upgrade`) passes its
connection in `config.attributes`, inside the transaction that holds the
migration lock, so replicas starting together migrate one at a time.
"""

from alembic import context

from serving.service.history import METADATA

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the history's migrations through `deepfake-pipeline history upgrade` (database.migrate)")
context.configure(connection=connection, target_metadata=METADATA, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
