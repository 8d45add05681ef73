"""The service's shared state: the history of checks (one row per analysed or refused file, never the
media itself) and the background jobs, so that any replica on the same database answers any job.

SQLite in a local file is the default for one process; PostgreSQL (psycopg 3)
is what several replicas share. The schema is Alembic's revisions in
`serving/service/migrations`, applied at start under a lock (`migrate`), or ahead of a
roll-out with `deepfake-pipeline history upgrade --url URL`.

A database that cannot be reached raises `HistoryUnavailableError` (its details go
to the log, never to users). Each check carries a unique, opaque `check_id` (what
users see of it), chosen before the first write, so a check written again
(from the spool, `serving.service.spool`) is never duplicated. Each active
job has an owner (a replica) and a lease its owner renews; a job whose lease ran out is claimed by another replica
(`claim_job`), see `serving.service.jobs`.
"""

import contextlib
import dataclasses
import datetime
import json
import logging
import secrets
import unicodedata
from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple

import sqlalchemy as sa

from serving.service.database import create_engine, migrate

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
    # What users see of a check (issue 45): an opaque random id, never the row's number.
    sa.Column("check_id", sa.String(32), nullable=True),
    # Per-face statistics of what the check analysed (`input_stats`), as JSON; never pixels.
    sa.Column("input_stats", sa.Text, nullable=True),
    # The user's word on the verdict (`feedback`): `real` or `fake`, a note, when.
    sa.Column("feedback_label", sa.String(8), nullable=True, index=True),
    sa.Column("feedback_note", sa.String(1024), nullable=True),
    sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True),
    # Where the upload is kept with `--keep-media` (`retention`), until when, and when it was exported to a span.
    sa.Column("media_uri", sa.String(1024), nullable=True),
    sa.Column("media_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("check_id", name="uq_checks_check_id"),
)
# The columns the history's pages show: never the row number, where media are kept, or the statistics.
PUBLIC_COLUMNS = [
    column
    for column in CHECKS.columns
    if column.name not in ("id", "input_stats", "media_uri", "media_expires_at", "exported_at")
]


JOBS = sa.Table(
    "jobs",
    METADATA,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("principal", sa.String(64), nullable=True),
    # The replica running the job, and until when its lease holds: past it, another replica takes the job over.
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True, index=True),
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
# Jobs still at work: the ones some replica must be running, and the ones that can be cancelled.
ACTIVE_JOB_STATES = ("queued", "running")
# Finished or abandoned jobs are forgotten after this long.
JOBS_KEPT = datetime.timedelta(days=1)
# Errors that mean the database cannot be used now (down, unreachable, its file gone), not a wrong query.
UNAVAILABLE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


class HistoryUnavailableError(RuntimeError):
    """The history database cannot be reached; the message is for users, the cause (chained) for the log."""

    def __init__(self) -> None:
        super().__init__("the history database is unavailable")


def new_check_id() -> str:
    """128 random bits, hex: what a user sees of a check, so that nobody can guess or count another's checks."""
    return secrets.token_hex(16)


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
    check_id: str = dataclasses.field(default_factory=new_check_id)
    input_stats: Optional[List[dict]] = None
    media_uri: Optional[str] = None
    media_expires_at: Optional[datetime.datetime] = None


def safe_file_name(name: str) -> str:
    """`name` without control or format characters (NUL, escapes, bidirectional overrides), at most 512
    characters: PostgreSQL refuses a NUL in text, terminals and logs obey escapes, and an override makes
    `evil\u202egpj.exe` show as `evilexe.jpg`. What is left is what every database stores as it is."""
    kept = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    return kept[:512] or "upload"


def check_row(check: Check) -> dict:
    """The row of `check` as JSON-ready values (the spool stores them as they are): stamped now, cut to fit."""
    values = dataclasses.asdict(check)
    expires = check.media_expires_at
    values.update(
        checked_at=_utcnow().isoformat(),
        file_name=safe_file_name(values["file_name"]),
        error=values["error"][:1024] if values["error"] else None,
        input_stats=json.dumps(check.input_stats) if check.input_stats is not None else None,
        media_expires_at=expires.isoformat() if expires else None,
    )
    return values


def _orphaned(now: datetime.datetime) -> Any:
    """The active jobs whose lease ended before `now` (jobs from before leases: not updated for a day)."""
    expired = sa.or_(
        JOBS.c.lease_until < now, sa.and_(JOBS.c.lease_until.is_(None), JOBS.c.updated_at < now - JOBS_KEPT)
    )
    return sa.and_(JOBS.c.state.in_(ACTIVE_JOB_STATES), expired)


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """`moment` with its time zone: SQLite gives back the UTC times `record` wrote without one."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def public_row(row: Mapping) -> dict:
    """A check as users see it: its times with their zone, the feedback beside the verdict."""
    item = {**row, "checked_at": _utc(row["checked_at"]).isoformat()}
    feedback_at = item.pop("feedback_at")
    label, note = item.pop("feedback_label"), item.pop("feedback_note")
    item["feedback"] = {"label": label, "note": note, "at": _utc(feedback_at).isoformat()} if label else None
    return item


class History:
    def __init__(self, url: str, pool_size: int = 5):
        self._engine = create_engine(url, pool_size)
        migrate(self._engine)
        # Called with the error whenever the database cannot be used (the service reports it as degraded).
        self.on_unavailable: Callable[[Exception], None] = lambda error: None

    @contextlib.contextmanager
    def _using(self) -> Iterator[None]:
        """Turns the errors of an unreachable database into `HistoryUnavailableError`, logging their details."""
        try:
            yield
        except UNAVAILABLE_ERRORS as e:
            logging.warning("The history database is unavailable: %s", e)
            self.on_unavailable(e)
            raise HistoryUnavailableError() from e

    def record(self, check: Check) -> str:
        """Writes `check` once (under its `check_id`); returns that id."""
        self.write_record(check_row(check))
        return check.check_id

    def write_record(self, row: Mapping[str, Any]) -> int:
        """Writes a row made by `check_row` (perhaps read back from the spool) unless its check id is there
        already; returns the id of the row that holds it."""
        times = {"checked_at": row["checked_at"], "media_expires_at": row.get("media_expires_at")}
        values = {**row, **{k: datetime.datetime.fromisoformat(v) for k, v in times.items() if v}}
        held = sa.select(CHECKS.c.id).where(CHECKS.c.check_id == values["check_id"])
        try:
            with self._using(), self._engine.begin() as connection:
                found = connection.execute(held).scalar()
                if found is None:
                    found = connection.execute(CHECKS.insert().values(**values)).inserted_primary_key[0]
        except sa.exc.IntegrityError:  # the same record, written meanwhile by another writer?
            with self._using(), self._engine.connect() as connection:
                found = connection.execute(held).scalar()
            if found is None:
                raise
        return int(found)

    def reconnect(self) -> None:
        """Drops the pooled connections and brings the database to the code's schema again: raises
        `HistoryUnavailableError` unless it answers. A SQLite file deleted under the service comes back empty
        (its connections went on reading the deleted file and refused every write)."""
        with self._using():
            self._engine.dispose()
            migrate(self._engine)

    def page(self, limit: int, offset: int, owner: Optional[str] = None) -> Tuple[List[dict], int]:
        """The newest checks first: (rows, total count); only `owner`'s checks when given, else everyone's."""
        where = CHECKS.c.principal == owner if owner is not None else sa.true()
        with self._using(), self._engine.connect() as connection:
            total = connection.execute(sa.select(sa.func.count()).select_from(CHECKS).where(where)).scalar_one()
            rows = connection.execute(
                sa.select(*PUBLIC_COLUMNS).where(where).order_by(CHECKS.c.id.desc()).limit(limit).offset(offset)
            ).mappings()
            items = [public_row(row) for row in rows]
        return items, int(total)

    def check(self, check_id: str, owner: Optional[str] = None) -> Optional[dict]:
        """A check's whole row; None when there is none, or when `owner` is given and it is not theirs."""
        query = sa.select(CHECKS).where(CHECKS.c.check_id == check_id)
        if owner is not None:
            query = query.where(CHECKS.c.principal == owner)
        with self._using(), self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return dict(row) if row is not None else None

    def set_feedback(self, check_id: str, owner: Optional[str], label: str, note: Optional[str]) -> Optional[dict]:
        """Writes the user's label and note on a check (a later word replaces an earlier one); the check as users
        see it, or None when there is none that `owner` may see."""
        where = CHECKS.c.check_id == check_id
        if owner is not None:
            where = sa.and_(where, CHECKS.c.principal == owner)
        values = {"feedback_label": label, "feedback_note": note[:1024] if note else None, "feedback_at": _utcnow()}
        with self._using(), self._engine.begin() as connection:
            if connection.execute(CHECKS.update().where(where).values(**values)).rowcount == 0:
                return None
            return public_row(connection.execute(sa.select(*PUBLIC_COLUMNS).where(where)).mappings().one())

    def media_to_forget(self, now: datetime.datetime) -> List[Tuple[str, str]]:
        """(check_id, media_uri) of the kept media that may go: past their time and not flagged, or exported."""
        unflagged_and_expired = sa.and_(CHECKS.c.feedback_label.is_(None), CHECKS.c.media_expires_at < now)
        query = sa.select(CHECKS.c.check_id, CHECKS.c.media_uri).where(
            CHECKS.c.media_uri.is_not(None), sa.or_(unflagged_and_expired, CHECKS.c.exported_at.is_not(None))
        )
        with self._using(), self._engine.connect() as connection:
            return [(row.check_id, row.media_uri) for row in connection.execute(query)]

    def forget_media(self, check_id: str) -> None:
        with self._using(), self._engine.begin() as connection:
            connection.execute(CHECKS.update().where(CHECKS.c.check_id == check_id).values(media_uri=None))

    def flagged_to_export(self) -> List[dict]:
        """The checks with feedback whose media are kept and not yet exported, oldest first."""
        query = (
            sa.select(CHECKS)
            .where(
                CHECKS.c.feedback_label.is_not(None), CHECKS.c.media_uri.is_not(None), CHECKS.c.exported_at.is_(None)
            )
            .order_by(CHECKS.c.id)
        )
        with self._using(), self._engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def mark_exported(self, check_id: str) -> None:
        with self._using(), self._engine.begin() as connection:
            connection.execute(CHECKS.update().where(CHECKS.c.check_id == check_id).values(exported_at=_utcnow()))

    def input_stats(self, since: datetime.datetime) -> List[dict]:
        """The per-face statistics of every check since `since` (`input_stats`), one dict per face."""
        query = sa.select(CHECKS.c.input_stats).where(CHECKS.c.checked_at >= since, CHECKS.c.input_stats.is_not(None))
        with self._using(), self._engine.connect() as connection:
            return [face for (stats,) in connection.execute(query) for face in json.loads(stats)]

    def save_job(
        self, job: Mapping, principal: Optional[str] = None, owner: Optional[str] = None, lease_s: float = 30.0
    ) -> bool:
        """Writes a job's whole state (its JSON document) and renews `owner`'s lease for `lease_s`; a new job is
        created (`principal` owns it). A job being cancelled keeps that state until its thread writes `cancelled`,
        whatever progress it reports meanwhile.

        False when the job is another replica's now (it took the job over once this one's lease ran out): the
        caller must stop running it.
        """
        now = _utcnow()
        values = {
            "state": job["state"],
            "document": json.dumps(job),
            "updated_at": now,
            "lease_until": now + datetime.timedelta(seconds=lease_s),
        }
        with self._using(), self._engine.begin() as connection:
            unless_cancelling = JOBS.c.state != CANCELLING if job["state"] != CANCELLED else sa.true()
            mine = sa.and_(JOBS.c.job_id == job["job_id"], JOBS.c.owner == owner)
            if connection.execute(JOBS.update().where(mine, unless_cancelling).values(**values)).rowcount:
                return True
            held = connection.execute(sa.select(JOBS.c.owner).where(JOBS.c.job_id == job["job_id"])).first()
            if held is not None:
                return held.owner == owner  # a job being cancelled is still its owner's to finish
            connection.execute(JOBS.insert().values(job_id=job["job_id"], principal=principal, owner=owner, **values))
            return True

    def cancel_job(self, job_id: str, owner: Optional[str] = None) -> Optional[str]:
        """Asks a queued or running job to stop (its state becomes `cancelling`); the job's state after the ask,
        or None when there is no such job of `owner`'s. Any replica's job thread sees it in the database."""
        which = [JOBS.c.job_id == job_id, *([JOBS.c.principal == owner] if owner is not None else [])]
        with self._using(), self._engine.begin() as connection:
            row = connection.execute(sa.select(JOBS.c.state, JOBS.c.document).where(*which)).first()
            if row is None or row.state not in ACTIVE_JOB_STATES:
                return None if row is None else row.state
            document = {**json.loads(row.document), "state": CANCELLING}
            connection.execute(
                JOBS.update()
                .where(*which, JOBS.c.state.in_(ACTIVE_JOB_STATES))
                .values(state=CANCELLING, document=json.dumps(document))
            )
        return CANCELLING

    def job_state(self, job_id: str) -> Optional[str]:
        """The job's state column: a cheap look, for a job thread asking whether it was cancelled."""
        with self._using(), self._engine.connect() as connection:
            return connection.execute(sa.select(JOBS.c.state).where(JOBS.c.job_id == job_id)).scalar()

    def expire_jobs(self, kept: datetime.timedelta = JOBS_KEPT) -> int:
        """Forgets the jobs not updated for `kept`; how many. The service runs it on a timer, so that an idle
        service forgets old jobs too, not only when a new job arrives."""
        oldest = _utcnow() - kept
        with self._using(), self._engine.begin() as connection:
            return int(connection.execute(JOBS.delete().where(JOBS.c.updated_at < oldest)).rowcount)

    def job(self, job_id: str, owner: Optional[str] = None) -> Optional[dict]:
        """A job's document; None when there is none, or when `owner` is given and the job is not theirs, so that
        a caller cannot tell another principal's job from a missing one."""
        query = sa.select(JOBS.c.document).where(JOBS.c.job_id == job_id)
        if owner is not None:
            query = query.where(JOBS.c.principal == owner)
        with self._using(), self._engine.connect() as connection:
            document = connection.execute(query).scalar()
        return json.loads(document) if document is not None else None

    def orphaned_jobs(self) -> List[str]:
        """The active jobs whose owner's lease has run out (the owner died, or lost the database for longer)."""
        with self._using(), self._engine.connect() as connection:
            return list(connection.execute(sa.select(JOBS.c.job_id).where(_orphaned(_utcnow()))).scalars())

    def claim_job(self, job_id: str, owner: str, lease_s: float) -> Optional[Tuple[dict, Optional[str]]]:
        """Takes an orphaned job over for `owner`, atomically (one claimant wins): its (document, principal), or
        None when it is no longer orphaned."""
        now = _utcnow()
        lease = {"owner": owner, "lease_until": now + datetime.timedelta(seconds=lease_s), "updated_at": now}
        with self._using(), self._engine.begin() as connection:
            claimed = connection.execute(JOBS.update().where(JOBS.c.job_id == job_id, _orphaned(now)).values(**lease))
            if not claimed.rowcount:
                return None
            row = connection.execute(sa.select(JOBS.c.document, JOBS.c.principal).where(JOBS.c.job_id == job_id))
            document, principal = row.one()
        return json.loads(document), principal

    @property
    def engine(self) -> sa.Engine:
        """The migrated database, shared with the API keys (`auth`) so that keys live beside the history."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()
