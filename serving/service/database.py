"""The history database itself: its engine (SQLite in a private file, or PostgreSQL through a checked pool), its
Alembic migrations (`migrations/`, applied at start under a lock, or ahead of a roll-out with
`deepfake-pipeline history upgrade --url URL`), and that verb. The tables and their queries are `history`'s."""

import argparse
import os
import pathlib
import threading
from typing import Optional

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

_MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
# Alembic's migration context is global to the process: one thread at a time runs migrations.
_MIGRATING = threading.Lock()
# Key of the PostgreSQL advisory lock that lets one replica at a time run the migrations.
_MIGRATION_LOCK = 0x6466_6873
# Revisions that a database made before migrations (by create_all) already holds, by the table each added.
_REVISION_OF_TABLE = (("checks", "0001"), ("jobs", "0002"))


def engine_url(url: str) -> str:
    """Managed databases hand out `postgres://` or `postgresql://` URLs; both mean the psycopg 3 driver here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_sqlite_folder(url: str) -> None:
    """Creates the folder of a SQLite file URL, so a first start (or a first key) needs no mkdir."""
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///") :])) or ".", exist_ok=True)


def make_private_sqlite_file(url: str) -> None:
    """Creates a SQLite file URL's file readable by its owner alone (0600), or makes an existing one so:
    the history names users' files and keeps the keys' digests. SQLite gives its journals the same mode."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
    if not path or path.startswith(":memory:") or path.startswith("file:"):
        return
    os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
    if os.stat(path).st_uid == os.geteuid():
        os.chmod(path, 0o600)


def create_engine(url: str, pool_size: int = 5) -> sa.Engine:
    """SQLite shared across the service's threads, in a private file; a server database through a checked,
    recycled pool."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        make_private_sqlite_file(url)
        return sa.create_engine(url, connect_args={"check_same_thread": False})
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=5,
        connect_args={"connect_timeout": 5},  # a database that does not answer fails a write in seconds, not minutes
    )


def _alembic_config(connection: sa.Connection) -> Config:
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(_MIGRATIONS))
    alembic_config.attributes["connection"] = connection
    return alembic_config


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Brings the database to `revision` in one transaction; on PostgreSQL under an advisory lock.

    A database created before migrations existed is stamped with the
    revisions its tables show, then upgraded, so no history is lost. Alembic's
    `op` and `context` are one per process, so one thread migrates at a time
    (a replay thread reconnecting while another history starts).
    """
    with _MIGRATING, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        alembic_config = _alembic_config(connection)
        inspector = sa.inspect(connection)
        if not inspector.has_table("alembic_version"):
            held = [revision for table, revision in _REVISION_OF_TABLE if inspector.has_table(table)]
            if held:
                command.stamp(alembic_config, held[-1])
        command.upgrade(alembic_config, revision)


def current_revision(engine: sa.Engine) -> Optional[str]:
    """The database's Alembic revision; None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


HISTORY_HELP = "the history database's migrations: apply them ahead of a roll-out (upgrade), or show its state"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `history upgrade|current --url URL` verb of `deepfake-pipeline`."""
    parser = commands.add_parser("history", help=HISTORY_HELP, description=HISTORY_HELP)
    parser.add_argument("action", choices=["upgrade", "current"])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the history database")
    parser.set_defaults(run=run_migrations)


def run_migrations(args: argparse.Namespace) -> int:
    """Migrates (upgrade) and prints the database's revision."""
    engine = create_engine(args.url)
    try:
        if args.action == "upgrade":
            migrate(engine)
        print(current_revision(engine) or "empty")
    finally:
        engine.dispose()
    return 0
