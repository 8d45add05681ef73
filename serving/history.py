"""The history of checks: one row per analysed (or refused) file, never the media itself.

SQLite in a local file by default; any SQLAlchemy URL (PostgreSQL, MySQL) in
production. The table is created on first use.
"""

import dataclasses
import datetime
from typing import List, Optional, Tuple

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

    def close(self) -> None:
        self._engine.dispose()
