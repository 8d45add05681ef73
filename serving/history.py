"""The service's shared state: the history of checks (one row per analysed or refused file, never the
media itself) and the background jobs, so that any replica on the same database answers any job.

SQLite in a local file by default; any SQLAlchemy URL (PostgreSQL, MySQL) in
production. The tables are created on first use.
"""

import dataclasses
import datetime
import json
from typing import List, Mapping, Optional, Tuple

import sqlalchemy as sa

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
)


JOBS = sa.Table(
    "jobs",
    METADATA,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
)
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


class History:
    def __init__(self, url: str):
        connect_args = {"check_same_thread": False} if url.startswith("sqlite") else {}
        self._engine = sa.create_engine(url, connect_args=connect_args)
        METADATA.create_all(self._engine)

    def record(self, check: Check) -> int:
        values = dataclasses.asdict(check)
        values["checked_at"] = datetime.datetime.now(datetime.timezone.utc)
        values["file_name"] = values["file_name"][:512]
        values["error"] = values["error"][:1024] if values["error"] else None
        with self._engine.begin() as connection:
            return int(connection.execute(CHECKS.insert().values(**values)).inserted_primary_key[0])

    def page(self, limit: int, offset: int) -> Tuple[List[dict], int]:
        """The newest checks first: (rows, total count)."""
        with self._engine.connect() as connection:
            total = connection.execute(sa.select(sa.func.count()).select_from(CHECKS)).scalar_one()
            rows = connection.execute(
                sa.select(CHECKS).order_by(CHECKS.c.id.desc()).limit(limit).offset(offset)
            ).mappings()
            items = [{**row, "checked_at": row["checked_at"].isoformat()} for row in rows]
        return items, int(total)

    def save_job(self, job: Mapping) -> None:
        """Writes a job's whole state (its JSON document); a new job also forgets jobs older than `JOBS_KEPT`."""
        now = datetime.datetime.now(datetime.timezone.utc)
        values = {"state": job["state"], "document": json.dumps(job), "updated_at": now}
        with self._engine.begin() as connection:
            updated = connection.execute(JOBS.update().where(JOBS.c.job_id == job["job_id"]).values(**values))
            if updated.rowcount == 0:
                connection.execute(JOBS.delete().where(JOBS.c.updated_at < now - JOBS_KEPT))
                connection.execute(JOBS.insert().values(job_id=job["job_id"], **values))

    def job(self, job_id: str) -> Optional[dict]:
        with self._engine.connect() as connection:
            document = connection.execute(sa.select(JOBS.c.document).where(JOBS.c.job_id == job_id)).scalar()
        return json.loads(document) if document is not None else None

    def close(self) -> None:
        self._engine.dispose()
