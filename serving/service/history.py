"""The service's shared state: the history of checks (one row per analysed or refused file, never the
media itself) and the background jobs, so that any replica on the same database answers any job.

SQLite in a local file is the default for one process; PostgreSQL (psycopg 3)
is what several replicas share. The schema is Alembic's revisions in
`serving/service/migrations`, applied at start under a lock (`migrate`), or ahead of a
roll-out with `deepfake-pipeline history upgrade --url URL`.
"""

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import unicodedata
from typing import List, Mapping, Optional, Tuple

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext

METADATA = sa.MetaData()
CHECKS = sa.Table(
    "checks",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("file_name", sa.String(512), nullable=False),
    sa.Column("media_type", sa.String(32), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=True),
    sa.Column("fake_probability", sa.Float, nullable=True),
    sa.Column("model_name", sa.String(128), nullable=True),
    sa.Column("model_version", sa.BigInteger, nullable=True),
    sa.Column("error", sa.String(1024), nullable=True),
    # The id of the API key's principal that asked for the check; NULL when the service runs without keys.
    sa.Column("principal", sa.String(64), nullable=True, index=True),
)


JOBS = sa.Table(
    "jobs",
    METADATA,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("principal", sa.String(64), nullable=True),
)
# API keys (serving.service.auth): a lookup id, the salted HMAC of the secret, never the secret itself.
API_KEYS = sa.Table(
    "api_keys",
    METADATA,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, index=True),
    # Who owns the checks and jobs of the key: shared by a name's keys while one is live (rotation), new once
    # every key of the name was revoked, so a reused name never inherits a revoked principal's history.
    sa.Column("principal_id", sa.String(64), nullable=False, index=True),
    sa.Column("salt", sa.LargeBinary(32), nullable=False),
    sa.Column("digest", sa.LargeBinary(32), nullable=False),
    sa.Column("admin", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
# A job whose owner asked to cancel it (or whose key was revoked): its thread stops and then marks it cancelled.
CANCELLING = "cancelling"
CANCELLED = "cancelled"
# Jobs still at work: the ones that can be cancelled.
ACTIVE_STATES = ("queued", "running")
# Finished or abandoned jobs are forgotten after this long.
JOBS_KEPT = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Check:
    file_name: str
    media_type: str
    size_bytes: int
    sha256: str
    verdict: Optional[str] = None
    fake_probability: Optional[float] = None
    model_name: Optional[str] = None
    model_version: Optional[int] = None
    error: Optional[str] = None
    principal: Optional[str] = None


_MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
# Key of the PostgreSQL advisory lock that lets one replica at a time run the migrations.
_MIGRATION_LOCK = 0x6466_6873
# Revisions that a database made before migrations (by create_all) already holds, by the table each added.
_REVISION_OF_TABLE = (("checks", "0001"), ("jobs", "0002"))


def safe_file_name(name: str) -> str:
    """`name` without control or format characters (NUL, escapes, bidirectional overrides), at most 512
    characters: PostgreSQL refuses a NUL in text, terminals and logs obey escapes, and an override makes
    `evil\u202egpj.exe` show as `evilexe.jpg`. What is left is what every database stores as it is."""
    kept = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    return kept[:512] or "upload"


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
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800)


def _alembic_config(connection: sa.Connection) -> Config:
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(_MIGRATIONS))
    alembic_config.attributes["connection"] = connection
    return alembic_config


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Brings the database to `revision` in one transaction; on PostgreSQL under an advisory lock.

    A database created before migrations existed is stamped with the
    revisions its tables show, then upgraded, so no history is lost.
    """
    with engine.begin() as connection:
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


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """`moment` with its time zone: SQLite gives back the UTC times `record` wrote without one."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


class History:
    def __init__(self, url: str, pool_size: int = 5):
        self._engine = create_engine(url, pool_size)
        migrate(self._engine)

    def record(self, check: Check) -> int:
        values = dataclasses.asdict(check)
        values["checked_at"] = datetime.datetime.now(datetime.timezone.utc)
        values["file_name"] = safe_file_name(values["file_name"])
        values["error"] = values["error"][:1024] if values["error"] else None
        with self._engine.begin() as connection:
            return int(connection.execute(CHECKS.insert().values(**values)).inserted_primary_key[0])

    def page(self, limit: int, offset: int, owner: Optional[str] = None) -> Tuple[List[dict], int]:
        """The newest checks first: (rows, total count); only `owner`'s checks when given, else everyone's."""
        where = CHECKS.c.principal == owner if owner is not None else sa.true()
        with self._engine.connect() as connection:
            total = connection.execute(sa.select(sa.func.count()).select_from(CHECKS).where(where)).scalar_one()
            rows = connection.execute(
                sa.select(CHECKS).where(where).order_by(CHECKS.c.id.desc()).limit(limit).offset(offset)
            ).mappings()
            items = [{**row, "checked_at": _utc(row["checked_at"]).isoformat()} for row in rows]
        return items, int(total)

    def save_job(self, job: Mapping, principal: Optional[str] = None) -> None:
        """Writes a job's whole state (its JSON document).

        `principal` owns a new job; updates keep the owner it was created with. A job being cancelled keeps
        that state until its thread writes `cancelled`, whatever progress it reports meanwhile.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        values = {"state": job["state"], "document": json.dumps(job), "updated_at": now}
        unless_cancelling = JOBS.c.state != CANCELLING if job["state"] != CANCELLED else sa.true()
        with self._engine.begin() as connection:
            updated = connection.execute(
                JOBS.update().where(JOBS.c.job_id == job["job_id"], unless_cancelling).values(**values)
            )
            if updated.rowcount == 0 and not self._job_exists(connection, job["job_id"]):
                connection.execute(JOBS.insert().values(job_id=job["job_id"], principal=principal, **values))

    @staticmethod
    def _job_exists(connection: sa.Connection, job_id: str) -> bool:
        return connection.execute(sa.select(JOBS.c.job_id).where(JOBS.c.job_id == job_id)).first() is not None

    def cancel_job(self, job_id: str, owner: Optional[str] = None) -> Optional[str]:
        """Asks a queued or running job to stop (its state becomes `cancelling`); the job's state after the ask,
        or None when there is no such job of `owner`'s. Any replica's job thread sees it in the database."""
        which = [JOBS.c.job_id == job_id, *([JOBS.c.principal == owner] if owner is not None else [])]
        with self._engine.begin() as connection:
            row = connection.execute(sa.select(JOBS.c.state, JOBS.c.document).where(*which)).first()
            if row is None or row.state not in ACTIVE_STATES:
                return None if row is None else row.state
            document = {**json.loads(row.document), "state": CANCELLING}
            connection.execute(
                JOBS.update()
                .where(*which, JOBS.c.state.in_(ACTIVE_STATES))
                .values(state=CANCELLING, document=json.dumps(document))
            )
        return CANCELLING

    def job_state(self, job_id: str) -> Optional[str]:
        """The job's state column: a cheap look, for a job thread asking whether it was cancelled."""
        with self._engine.connect() as connection:
            return connection.execute(sa.select(JOBS.c.state).where(JOBS.c.job_id == job_id)).scalar()

    def expire_jobs(self, kept: datetime.timedelta = JOBS_KEPT) -> int:
        """Forgets the jobs not updated for `kept`; how many. The service runs it on a timer, so that an idle
        service forgets old jobs too, not only when a new job arrives."""
        oldest = datetime.datetime.now(datetime.timezone.utc) - kept
        with self._engine.begin() as connection:
            return int(connection.execute(JOBS.delete().where(JOBS.c.updated_at < oldest)).rowcount)

    def job(self, job_id: str, owner: Optional[str] = None) -> Optional[dict]:
        """A job's document; None when there is none, or when `owner` is given and the job is not theirs, so that
        a caller cannot tell another principal's job from a missing one."""
        query = sa.select(JOBS.c.document).where(JOBS.c.job_id == job_id)
        if owner is not None:
            query = query.where(JOBS.c.principal == owner)
        with self._engine.connect() as connection:
            document = connection.execute(query).scalar()
        return json.loads(document) if document is not None else None

    @property
    def engine(self) -> sa.Engine:
        """The migrated database, shared with the API keys (`auth`) so that keys live beside the history."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()


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
