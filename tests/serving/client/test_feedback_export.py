"""`deepfake-pipeline feedback export`: the flagged uploads the service kept become a span in the pipeline's
folders layout (`real/`, `fake/` named by SHA-256, `feedback.jsonl`), each check exported once, and the
pipeline's own reader and ingest take the span like any other dataset."""

import hashlib
import json
import os

import pytest

from deepfake_detection import contract
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import LAYOUT_FOLDERS, detect_layout, read_dataset
from deepfake_detection.ingest.videos import ingest_video
from pipeline_runner import main
from serving.service import history, retention


def record_check(store, media, data, verdict, label=None, keep=True):
    """A check of `data` (kept by `media` when `keep`), with feedback `label` when given; returns its id."""
    check_id = history.new_check_id()
    uri, until = media.keep(check_id, "video/mp4", data) if keep else (None, None)
    check = history.Check(
        "clip.mp4",
        "video/mp4",
        len(data),
        hashlib.sha256(data).hexdigest(),
        verdict,
        0.8 if verdict == "fake" else 0.2,
        "faces",
        3,
        check_id=check_id,
        media_uri=uri,
        media_expires_at=until,
    )
    store.record(check)
    if label:
        store.set_feedback(check_id, None, label, f"truly {label}")
    return check_id


@pytest.fixture
def flagged(tmp_path, sample_dataset):
    """A history with two flagged kept checks (one wrongly fake, one wrongly real), one flagged whose upload was
    not kept and one kept but not flagged; the sample videos are their uploads."""
    url = f"sqlite:///{tmp_path}/history.sqlite"
    store = history.History(url)
    media = retention.MediaStore(str(tmp_path / "kept"), hours=1)
    videos = sorted(read_dataset(sample_dataset), key=lambda r: r.label)
    data = [open(record.path, "rb").read() for record in videos]
    ids = {
        "real": record_check(store, media, data[0], "fake", "real"),
        "fake": record_check(store, media, data[-1], "real", "fake"),
        "unkept": record_check(store, media, data[1], "fake", "real", keep=False),
        "unflagged": record_check(store, media, data[2], "real"),
    }
    yield url, store, ids, data
    store.close()


def test_export_writes_a_span_once(flagged, tmp_path, capsys):
    url, store, ids, data = flagged
    span = tmp_path / "data_root" / "span-7"
    assert main(["feedback", "export", "--history-url", url, "--output", str(span)]) == 0
    assert "Exported 2 flagged check(s)" in capsys.readouterr().out
    real_sha, fake_sha = hashlib.sha256(data[0]).hexdigest(), hashlib.sha256(data[-1]).hexdigest()
    assert sorted(os.listdir(span)) == ["fake", "feedback.jsonl", "real"]
    assert os.listdir(span / "real") == [f"{real_sha}.mp4"] and os.listdir(span / "fake") == [f"{fake_sha}.mp4"]
    assert (span / "real" / f"{real_sha}.mp4").read_bytes() == data[0]
    lines = [json.loads(line) for line in (span / "feedback.jsonl").read_text().splitlines()]
    assert [line["check_id"] for line in lines] == [ids["real"], ids["fake"]]
    first = lines[0]
    assert first["label"] == "real" and first["verdict"] == "fake" and first["fake_probability"] == 0.8
    assert first["model_name"] == "faces" and first["model_version"] == 3 and first["note"] == "truly real"
    assert first["file"] == f"real/{real_sha}.mp4" and first["checked_at"] and first["feedback_at"]
    assert store.check(ids["real"])["exported_at"] is not None and store.check(ids["unkept"])["exported_at"] is None

    assert main(["feedback", "export", "--history-url", url, "--output", str(span)]) == 0
    assert "Exported 0 flagged check(s)" in capsys.readouterr().out
    assert len((span / "feedback.jsonl").read_text().splitlines()) == 2
    assert retention.sweep(store) == 2  # exported uploads leave the service's folder once in the span
    assert store.check(ids["unflagged"])["media_uri"] is not None


def test_export_of_a_changed_upload_is_refused_and_left_for_later(flagged, tmp_path, capsys):
    url, store, ids, _ = flagged
    with open(store.check(ids["fake"])["media_uri"], "ab") as kept:
        kept.write(b"tampered")
    assert main(["feedback", "export", "--history-url", url, "--output", str(tmp_path / "span")]) == 1
    assert "no longer matches its SHA-256" in capsys.readouterr().err
    assert store.check(ids["fake"])["exported_at"] is None and store.check(ids["real"])["exported_at"] is not None


def test_the_ingest_reads_an_exported_span(flagged, tmp_path):
    url, _, _, _ = flagged
    span = tmp_path / "span-1"
    assert main(["feedback", "export", "--history-url", url, "--output", str(span)]) == 0
    assert detect_layout(str(span)) == LAYOUT_FOLDERS
    records = read_dataset(str(span))
    assert sorted((os.path.dirname(r.relative_path), r.label) for r in records) == [
        ("fake", contract.FAKE_LABEL),
        ("real", contract.REAL_LABEL),
    ]
    config = IngestConfig(frames_per_video=4)
    detector = FaceDetector.from_config(config)
    for record in records:
        result = ingest_video(record, detector, config)
        assert result.report["status"] == contract.STATUS_OK and result.face_examples, result.report


def test_export_needs_a_history_and_an_output():
    with pytest.raises(SystemExit):
        main(["feedback", "export", "--output", "x"])
