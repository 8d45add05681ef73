"""History faults on a real database: PostgreSQL (the server the suite starts) cut off while the service runs,
checks spooled on disk and written back exactly once, and jobs whose replica died taken over by another.

A database is cut off as an outage looks to the service: new connections are refused
(`ALLOW_CONNECTIONS false`) and the open ones are terminated by the server.
"""

import contextlib
import dataclasses
import time

import cv2
import httpx
import pytest
import skimage.data
import sqlalchemy as sa

from serving.service import database, history, jobs
from serving.service.analysis import DetectionService
from serving.service.history import Check, check_row
from serving.service.settings import ServiceSettings
from serving.service.spool import Recorder, Spool
from serving.service.uploads import Upload
from tests.serving.helpers import LIMITS, finished_job, serving_on_loopback

FACE = cv2.imencode(".jpg", skimage.data.astronaut()[..., ::-1])[1].tobytes()
# What no user-facing message may show of a database failure.
DATABASE_DETAILS = ("SELECT", "INSERT", "psycopg", "sqlalchemy", "127.0.0.1", "connection")


@contextlib.contextmanager
def cut_off(url: str):
    """The database of `url` refuses connections, and loses the ones it had, for the block."""
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(database.engine_url(url.rsplit("/", 1)[0] + "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
        )
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def wait_for(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def check_ids(url: str) -> list:
    engine = database.create_engine(url)
    with engine.connect() as connection:
        ids = list(connection.execute(sa.select(history.CHECKS.c.check_id)).scalars())
    engine.dispose()
    return ids


@pytest.fixture
def postgres_service(postgres, model_server, tmp_path):
    url = postgres(f"faults_{tmp_path.name.lower()}")
    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=url,
        history_spool_dir=str(tmp_path / "spool"),
        history_retry_s=0.5,
        frames_per_video=6,
        **LIMITS,
    )
    detection = DetectionService(settings)
    try:
        with serving_on_loopback(detection) as service_url:
            yield service_url, detection, url
    finally:
        detection.close()


def upload(url: str, path: str = "/v1/detect") -> httpx.Response:
    return httpx.post(f"{url}{path}", files={"files": ("face.jpg", FACE)}, timeout=120)


def assert_history_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("the history database is unavailable")
    assert not any(detail in message for detail in DATABASE_DETAILS)


@pytest.mark.postgres
def test_verdicts_go_on_while_the_database_is_down_and_their_checks_are_written_once_after(postgres_service):
    url, detection, database = postgres_service
    before = upload(url)
    assert before.status_code == 200 and before.json()["results"][0]["recorded"] is True
    with cut_off(database):
        during = [upload(url) for _ in range(3)]
        assert [r.status_code for r in during] == [200] * 3
        assert all(r.json()["results"][0]["recorded"] is False for r in during)
        assert all(r.json()["results"][0]["verdict"] for r in during)
        health = httpx.get(f"{url}/healthz").json()
        assert health["status"] == "degraded" and health["history"]["spooled"] == 3
        assert not any(detail in health["history"]["detail"] for detail in DATABASE_DETAILS)
        assert httpx.get(f"{url}/readyz").status_code == 200, "verdicts work: the service stays ready"
        metrics = httpx.get(f"{url}/metrics").text
        assert "detection_history_up 0.0" in metrics and "detection_history_spooled 3.0" in metrics
        assert_history_unavailable(upload(url, "/v1/jobs"))
        assert_history_unavailable(httpx.get(f"{url}/v1/jobs/some-job"))
        assert_history_unavailable(httpx.get(f"{url}/v1/history"))
    assert wait_for(lambda: httpx.get(f"{url}/healthz").json()["status"] == "ok")
    ids = check_ids(database)
    assert len(ids) == 4 == len(set(ids)), "every check once: the one before and the three spooled"
    assert "detection_history_up 1.0" in httpx.get(f"{url}/metrics").text
    assert len(detection.recorder.spool) == 0
    after = upload(url)
    assert after.status_code == 200 and after.json()["results"][0]["recorded"] is True


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.sqlite"
    return request.getfixturevalue("postgres")(f"spool_{tmp_path.name.lower()}")


def check(name: str) -> Check:
    return Check(name, "image/jpeg", 10, "0" * 64, "real", 0.1)


def test_a_spool_replayed_again_after_a_crash_writes_each_check_once(database_url, tmp_path):
    store = history.History(database_url)
    spool = Spool(str(tmp_path / "spool"), 1 << 20)
    rows = [check_row(dataclasses.replace(check(f"clip{i}.mp4"), check_id=f"{i:032x}")) for i in range(3)]
    for row in rows:
        assert spool.add(row)
    # The service was killed after writing the first spooled row and before removing its file.
    store.write_record(rows[0])
    restarted = Recorder(store, Spool(str(tmp_path / "spool"), 1 << 20), retry_s=0.1)
    assert restarted.degraded, "a spool left by an earlier run is replayed at start"
    assert wait_for(lambda: not restarted.degraded)
    assert sorted(check_ids(database_url)) == [row["check_id"] for row in rows]
    store.write_record(rows[1])  # written again: still once
    assert len(check_ids(database_url)) == 3 and len(restarted.spool) == 0
    restarted.close()
    store.close()


def test_a_deleted_sqlite_history_is_made_again_with_the_checks_since(tmp_path):
    url = f"sqlite:///{tmp_path}/history.sqlite"
    store = history.History(url)
    recorder = Recorder(store, Spool(str(tmp_path / "spool"), 1 << 20), retry_s=0.1)
    assert recorder.record(check("before.mp4"))
    (tmp_path / "history.sqlite").unlink()
    assert not recorder.record(check("after.mp4")), "the write fails: the check is spooled"
    assert wait_for(lambda: not recorder.degraded)
    items, total = store.page(10, 0)
    assert total == 1 and items[0]["file_name"] == "after.mp4"
    assert recorder.record(check("later.mp4"))
    recorder.close()
    store.close()


def test_a_full_spool_drops_and_counts_what_does_not_fit(tmp_path):
    spool = Spool(str(tmp_path / "spool"), 600)
    row = check_row(dataclasses.replace(check("clip.mp4"), check_id="a" * 32))
    assert spool.add(row)
    assert not spool.add({**row, "check_id": "b" * 32}), "past its bound the spool refuses"
    assert len(spool) == 1 and spool.size_bytes <= 600


@pytest.fixture
def job_service(postgres, model_server, tmp_path):
    url = postgres(f"jobs_{tmp_path.name.lower()}")
    store = history.History(url)
    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=url,
        history_spool_dir=str(tmp_path / "spool"),
        frames_per_video=6,
        job_lease_s=0.6,
        **LIMITS,
    )
    detection = DetectionService(settings)
    try:
        yield detection, store
    finally:
        detection.close()
        store.close()


FINISHED = {"status": 200, "file_name": "first.jpg", "verdict": "real", "fake_probability": 0.1}


def dead_replicas_job(store: history.History, job_id: str) -> None:
    """A job two files long whose replica finished the first and died: its lease ran out a second ago."""
    document = {
        "job_id": job_id,
        "state": "running",
        "files": 2,
        "file_index": 1,
        "stage": "decoding",
        "thumbnails": False,
        "explain": False,
        "results": [FINISHED],
    }
    store.save_job(document, "alice", owner="dead-replica", lease_s=-1)


@pytest.mark.postgres
def test_a_job_whose_replica_died_and_took_its_files_is_failed_with_the_reason_and_keeps_its_results(job_service):
    detection, store = job_service
    dead_replicas_job(store, "orphan")
    job = finished_job(lambda: store.job("orphan"), timeout_s=30)
    assert job["state"] == "failed" and job["error"] == jobs.FILES_GONE
    assert job["results"] == [FINISHED]
    assert store.job("orphan", owner="alice") is not None, "the job keeps its principal"
    assert detection.metrics.jobs_taken_over.labels("failed")._value.get() == 1


@pytest.mark.postgres
def test_a_job_whose_replica_died_is_resumed_from_its_next_file_where_its_files_can_be_read(job_service):
    detection, store = job_service
    # The files as a media store that keeps uploads would give them back (the replica's memory died with it).
    detection.jobs.media.put("resumable", [Upload("first.jpg", FACE), Upload("second.jpg", FACE)])
    dead_replicas_job(store, "resumable")
    job = finished_job(lambda: store.job("resumable"), timeout_s=60)
    assert job["state"] == "done" and job["resumed_at_file"] == 1, job
    first, second = job["results"]
    assert first == FINISHED, "the finished file is not analysed again"
    assert second["file_name"] == "second.jpg" and second["status"] == 200 and second["verdict"]
    items, total = store.page(10, 0)
    assert total == 1 and items[0]["file_name"] == "second.jpg" and items[0]["principal"] == "alice"


@pytest.mark.postgres
def test_a_replica_whose_job_was_taken_over_writes_it_no_more(postgres):
    store = history.History(postgres("fencing"))
    job = {"job_id": "j", "state": "running", "results": []}
    assert store.save_job(job, owner="a", lease_s=-1)
    assert store.claim_job("j", "b", lease_s=30) == (job, None)
    assert store.claim_job("j", "c", lease_s=30) is None, "one claimant wins, and the lease now holds"
    assert not store.save_job({**job, "state": "done"}, owner="a"), "the old owner has lost the job"
    assert store.job("j")["state"] == "running"
    assert store.save_job({**job, "state": "done"}, owner="b")
    assert store.orphaned_jobs() == []
    store.close()
