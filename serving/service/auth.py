"""API keys of the detection service: who may call `/v1/*`, and whose checks and jobs they are.

A key reads `dfk_<key id>_<secret>`: the key id (random, not the name, so a
key tells nothing about whose it is) finds the row, the secret proves it. The
database keeps only a random per-key salt and HMAC-SHA256(salt, secret): the
secret is 256 random bits, so a slow password hash would add latency to every
request and no safety. Verification does the same work whatever is wrong
with a key (malformed, unknown id, wrong secret, revoked): one lookup, one
HMAC and one `hmac.compare_digest`, against a dummy digest when no row
matched, so neither the answer nor its timing tells a known id from an
unknown one.

Keys are read from the database on every request, never cached, so a key
revoked on one replica (or from the command line) stops working on all of
them at once. The keys live in the history's database (SQLite, or the
cluster's PostgreSQL), under the history's Alembic revisions.
"""

import dataclasses
import datetime
import hashlib
import hmac
import re
import secrets
from typing import List, Optional, Tuple

import sqlalchemy as sa

from serving.service.database import create_engine, make_sqlite_folder, migrate
from serving.service.history import API_KEYS

KEY_PREFIX = "dfk"
# Principals' names: what the history records as the owner of a check (64 characters at most, no spaces).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_KEY_PATTERN = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")
# What an unknown or malformed key is compared against, so that it costs what a known one costs.
_DUMMY_SALT = bytes(32)
_DUMMY_DIGEST = hmac.new(_DUMMY_SALT, b"", hashlib.sha256).digest()


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a valid key speaks for: checks and jobs are recorded under `principal_id` (not the name, which a
    new key may reuse once the old ones are revoked); an admin sees everyone's. `key_id` is the key itself,
    whose revocation cancels the work it started."""

    name: str
    admin: bool = False
    principal_id: str = ""
    key_id: str = ""


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    """A key as `keys list` shows it: never its secret, which the database does not hold."""

    key_id: str
    name: str
    admin: bool
    created_at: datetime.datetime
    revoked_at: Optional[datetime.datetime]


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def split_key(key: str) -> Tuple[str, str]:
    """(key id, secret) of a well-formed key; ("", "") for anything else, which then matches no row."""
    match = _KEY_PATTERN.fullmatch(key)
    return (match.group(1), match.group(2)) if match else ("", "")


def bearer_key(authorization: Optional[str]) -> str:
    """The key of an `Authorization: Bearer KEY` header; "" when there is none."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


class KeyStore:
    """Creates, lists, revokes and verifies keys in the history's database."""

    def __init__(self, engine: sa.Engine):
        self._engine = engine

    @classmethod
    def open(cls, url: str) -> "KeyStore":
        """The store of the database at `url`, migrated to the newest revision first (as the service does)."""
        make_sqlite_folder(url)
        engine = create_engine(url, pool_size=1)
        migrate(engine)
        return cls(engine)

    def create(self, name: str, admin: bool = False) -> str:
        """A new key for principal `name`; returned once, kept hashed. While `name` holds a live key the new one
        speaks for the same principal (rotation); otherwise it is a new principal with an empty history."""
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid name: letters, digits, '.', '_', '@' and '-', at most 64")
        key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_bytes(32)
        now = datetime.datetime.now(datetime.timezone.utc)
        with self._engine.begin() as connection:
            live = connection.execute(
                sa.select(API_KEYS.c.principal_id).where(API_KEYS.c.name == name, API_KEYS.c.revoked_at.is_(None))
            ).first()
            principal_id = live.principal_id if live is not None else f"p_{secrets.token_hex(12)}"
            connection.execute(
                API_KEYS.insert().values(
                    key_id=key_id,
                    name=name,
                    principal_id=principal_id,
                    salt=salt,
                    digest=_digest(salt, secret),
                    admin=admin,
                    created_at=now,
                )
            )
        return f"{KEY_PREFIX}_{key_id}_{secret}"

    def list(self) -> List[KeyInfo]:
        """Every key, revoked ones included, oldest first."""
        columns = [API_KEYS.c[f.name] for f in dataclasses.fields(KeyInfo)]
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(*columns).order_by(API_KEYS.c.created_at, API_KEYS.c.name))
            return [KeyInfo(*row) for row in rows]

    def revoke(self, name: str, key_id: Optional[str] = None) -> int:
        """Revokes every live key of principal `name`, or only the one with `key_id` (rotation: the old key
        goes once the new one is in use); how many there were."""
        now = datetime.datetime.now(datetime.timezone.utc)
        which = [API_KEYS.c.name == name, API_KEYS.c.revoked_at.is_(None)]
        if key_id is not None:
            which.append(API_KEYS.c.key_id == key_id)
        with self._engine.begin() as connection:
            revoked = connection.execute(API_KEYS.update().where(*which).values(revoked_at=now))
        return int(revoked.rowcount)

    def verify(self, key: str) -> Optional[Principal]:
        """The principal of a valid, live key; None for any other, after the same work (see the module)."""
        key_id, secret = split_key(key)
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    API_KEYS.c.name,
                    API_KEYS.c.principal_id,
                    API_KEYS.c.salt,
                    API_KEYS.c.digest,
                    API_KEYS.c.admin,
                    API_KEYS.c.revoked_at,
                ).where(API_KEYS.c.key_id == key_id)
            ).first()
        salt, expected = (row.salt, row.digest) if row is not None else (_DUMMY_SALT, _DUMMY_DIGEST)
        matches = hmac.compare_digest(_digest(salt, secret), expected)
        if row is None or not matches or row.revoked_at is not None:
            return None
        return Principal(row.name, bool(row.admin), row.principal_id, key_id)

    def is_live(self, key_id: str) -> bool:
        """Whether the key `key_id` exists and is not revoked: work it started stops once it is not."""
        with self._engine.connect() as connection:
            revoked = connection.execute(sa.select(API_KEYS.c.revoked_at).where(API_KEYS.c.key_id == key_id)).first()
        return revoked is not None and revoked.revoked_at is None

    def close(self) -> None:
        self._engine.dispose()
