"""Uploads kept only when asked: `MediaStore` writes them, the sweeper deletes the unflagged ones past their
time and the exported ones, keeps flagged ones until they are exported, and refuses remote filesystems."""

import datetime
import time

import pytest

from serving.service import history, retention

HOUR = datetime.timedelta(hours=1)


def kept_check(store, media, name, data=b"\x00\x00\x00\x18ftypmp42"):
    """A check whose upload `media` keeps; returns its id."""
    check_id = history.new_check_id()
    uri, until = media.keep(check_id, "video/mp4", data)
    store.record(
        history.Check(
            name,
            "video/mp4",
            len(data),
            "0" * 64,
            "real",
            0.1,
            check_id=check_id,
            media_uri=uri,
            media_expires_at=until,
        )
    )
    return check_id


def test_the_sweeper_keeps_flagged_and_fresh_media_and_deletes_the_rest(tmp_path):
    store = history.History(f"sqlite:///{tmp_path}/history.sqlite")
    media = retention.MediaStore(str(tmp_path / "kept"), hours=1)
    fresh, expired, flagged, exported = (kept_check(store, media, n) for n in ("a", "b", "c", "d"))
    for check_id in (flagged, exported):
        store.set_feedback(check_id, None, "fake", None)
    store.mark_exported(exported)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert retention.sweep(store, now) == 1  # exported: gone at once
    assert retention.sweep(store, now + 2 * HOUR) == 2  # fresh and expired, past their hour; flagged stays
    left = sorted(p.name for p in (tmp_path / "kept").iterdir())
    assert left == [f"{flagged}.mp4"]
    assert store.check(flagged)["media_uri"] and store.check(fresh)["media_uri"] is None
    assert store.check(expired)["media_uri"] is None and store.check(exported)["media_uri"] is None
    assert retention.sweep(store, now + 1000 * HOUR) == 0
    store.close()


def test_a_sweep_forgets_media_already_deleted(tmp_path):
    store = history.History(f"sqlite:///{tmp_path}/history.sqlite")
    media = retention.MediaStore(f"file://{tmp_path}/kept", hours=0.5)
    check_id = kept_check(store, media, "gone")
    (tmp_path / "kept" / f"{check_id}.mp4").unlink()
    assert retention.sweep(store, datetime.datetime.now(datetime.timezone.utc) + HOUR) == 1
    assert store.check(check_id)["media_uri"] is None
    store.close()


def test_the_sweeper_thread_sweeps_until_stopped(tmp_path):
    store = history.History(f"sqlite:///{tmp_path}/history.sqlite")
    media = retention.MediaStore(str(tmp_path / "kept"), hours=1e-9)
    check_id = kept_check(store, media, "short")
    sweeper = retention.Sweeper(store, every_s=0.05).start()
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=10)
    while store.check(check_id)["media_uri"] and datetime.datetime.now() < deadline:
        time.sleep(0.05)
    sweeper.stop()
    assert store.check(check_id)["media_uri"] is None and not list((tmp_path / "kept").iterdir())
    store.close()


@pytest.mark.parametrize("uri", ["gs://bucket/kept", "s3://bucket/kept", "hdfs://namenode/kept"])
def test_remote_filesystems_are_refused_with_the_reason(uri):
    with pytest.raises(ValueError, match="only local folders"):
        retention.MediaStore(uri, hours=1)


def test_hours_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        retention.MediaStore(str(tmp_path), hours=0)
