"""The history database: Alembic's revisions give the tables the code expects, on SQLite and on a real
PostgreSQL server, an older database is upgraded without losing rows, and replicas migrate one at a time."""

import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from serving.service import database, history

# The newest revision in serving/service/migrations: what every start migrates to.
HEAD = ScriptDirectory(str(database._MIGRATIONS)).get_current_head()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.sqlite"
    return request.getfixturevalue("postgres")(f"history_{tmp_path.name.lower()}")


def test_migrations_build_the_schema_the_code_queries(database_url):
    store = history.History(database_url)
    engine = database.create_engine(database_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), history.METADATA) == []
    assert database.current_revision(engine) == HEAD
    store.close()
    engine.dispose()


def test_checks_and_jobs_round_trip(database_url):
    store = history.History(database_url)
    ids = [store.record(history.Check(f"clip{i}.mp4", "video/mp4", 10 + i, "0" * 64, "fake", 0.9)) for i in range(3)]
    items, total = store.page(limit=2, offset=0)
    assert total == 3 and [item["check_id"] for item in items] == ids[::-1][:2]
    assert all(len(check_id) == 32 for check_id in ids) and len(set(ids)) == 3
    assert "id" not in items[0] and items[0]["feedback"] is None
    assert items[0]["checked_at"].endswith("+00:00") or "T" in items[0]["checked_at"]
    store.save_job({"job_id": "j1", "state": "queued", "progress": 0.0})
    store.save_job({"job_id": "j1", "state": "done", "progress": 1.0})
    assert store.job("j1") == {"job_id": "j1", "state": "done", "progress": 1.0}
    assert store.job("missing") is None
    store.close()


# The checks' columns before revision 0003 added the principal and 0006 the check id, feedback, media and statistics.
COLUMNS_0001 = (
    "id", "checked_at", "file_name", "media_type", "size_bytes", "sha256", "verdict", "fake_probability",
    "model_name", "model_version", "error",
)  # fmt: skip


def test_a_database_from_before_migrations_is_upgraded_and_keeps_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path}/old.sqlite"
    engine = database.create_engine(url)
    # The checks table as create_all made it before migrations: without the columns later revisions added.
    old_checks = sa.Table(
        "checks", sa.MetaData(), *(c._copy() for c in history.CHECKS.columns if c.name in COLUMNS_0001)
    )
    old_checks.create(engine)
    with engine.begin() as connection:
        connection.execute(
            old_checks.insert().values(
                checked_at=sa.func.now(), file_name="old.mp4", media_type="video/mp4", size_bytes=1, sha256="0" * 64
            )
        )
    store = history.History(url)
    items, total = store.page(limit=10, offset=0)
    assert total == 1 and items[0]["file_name"] == "old.mp4" and len(items[0]["check_id"]) == 32
    store.save_job({"job_id": "new", "state": "queued"})
    assert database.current_revision(engine) == HEAD
    store.close()
    engine.dispose()


@pytest.mark.postgres
def test_replicas_starting_together_migrate_one_at_a_time(postgres):
    url = postgres("history_race")
    errors = []

    def start():
        try:
            history.History(url).close()
        except Exception as error:  # noqa: BLE001 - collected and reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert database.current_revision(database.create_engine(url)) == HEAD


def test_managed_database_urls_use_the_psycopg_driver():
    assert database.engine_url("postgres://u:p@db:5432/h") == "postgresql+psycopg://u:p@db:5432/h"
    assert database.engine_url("postgresql://db/h") == "postgresql+psycopg://db/h"
    assert database.engine_url("sqlite:///h.sqlite") == "sqlite:///h.sqlite"


def test_file_names_with_nul_and_control_characters_are_stored_cleaned_on_every_database(database_url):
    """PostgreSQL refuses a NUL in text: the check would be lost with a 500. Every database gets the same
    cleaned name, without NUL, escapes or a right-to-left override."""
    store = history.History(database_url)
    store.record(history.Check("evil\x00\x1b[31m\u202egpj.exe\x7f", "image/jpeg", 1, "0" * 64))
    store.record(history.Check("\x00\x01", "image/jpeg", 1, "0" * 64))
    items, total = store.page(10, 0)
    assert total == 2 and [item["file_name"] for item in items] == ["upload", "evil[31mgpj.exe"]
    store.close()


def test_the_sqlite_history_file_is_created_private(tmp_path):
    import os
    import stat

    store = history.History(f"sqlite:///{tmp_path}/history.sqlite")
    store.record(history.Check("a.jpg", "image/jpeg", 1, "0" * 64))
    assert stat.S_IMODE(os.stat(tmp_path / "history.sqlite").st_mode) == 0o600
    store.close()


def test_cancelling_a_job_holds_against_its_threads_progress_until_it_ends(database_url):
    store = history.History(database_url)
    store.save_job({"job_id": "j", "state": "running", "progress": 0.1}, "alice")
    assert store.cancel_job("j", "bob") is None, "another principal's job is not found"
    assert store.cancel_job("j", "alice") == history.CANCELLING
    store.save_job({"job_id": "j", "state": "running", "progress": 0.5})
    assert store.job_state("j") == history.CANCELLING
    store.save_job({"job_id": "j", "state": history.CANCELLED, "progress": 0.5})
    assert store.job("j")["state"] == history.CANCELLED and store.cancel_job("j", "alice") == history.CANCELLED
    store.close()


def test_jobs_expire_by_age_alone(database_url):
    import datetime

    store = history.History(database_url)
    store.save_job({"job_id": "old", "state": "done"})
    assert store.expire_jobs(datetime.timedelta(days=1)) == 0 and store.job("old")
    assert store.expire_jobs(datetime.timedelta(0)) == 1 and store.job("old") is None
    store.close()
