"""The standalone ingest of a folder: worker processes or one, the same examples and an account of every file."""

import json
import os
import shutil
import time

import pytest
import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.ingest.standalone import CLIPS_DIR, ingest_folder, split_file
from tests.deepfake_detection.ingest.worker_tasks import crash_on_marked_files, hang_on_marked_files
from tests.helpers import BROKEN_FILE_LIMITS, make_broken_files

SMALL = {"frames_per_video": 6, "image_size": 64, "clip_length": 3}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sample_dataset):
    root = tmp_path_factory.mktemp("folder_ingest")
    good = sorted(r.path for r in read_dataset(sample_dataset))
    expected = make_broken_files(str(root / "fake"), good[0])
    os.makedirs(root / "real")
    for number, path in enumerate(good[:3]):
        shutil.copy(path, root / "real" / f"good_{number}.mp4")
    return str(root), expected


def _examples(folder):
    found = {}
    for split in contract.SPLIT_NAMES:
        for record in tf.data.TFRecordDataset(split_file(folder, split), compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            video = feature[contract.VIDEO_ID_KEY].bytes_list.value[0]
            frame = feature[contract.FRAME_INDEX_KEY].int64_list.value[0]
            found.setdefault(split, set()).add((video, frame, tuple(feature[contract.FACE_BOX_KEY].int64_list.value)))
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_every_file_is_reported_and_workers_write_the_same_examples(dataset, tmp_path, workers):
    root, broken = dataset
    records = read_dataset(root)
    lines = []
    ingest_config = IngestConfig(**SMALL, **BROKEN_FILE_LIMITS)
    counts = ingest_folder(records, ingest_config, str(tmp_path / "out"), workers, progress=lines.append)
    rows = [json.loads(line) for line in open(tmp_path / "out" / contract.REPORT_FILE_NAME)]
    assert [row["video"] for row in rows] == sorted(r.relative_path for r in records)
    assert sum(counts.values()) == len(records) == len(lines)
    assert counts["ok"] == 3
    assert {row["video"]: row["status"] for row in rows if row["video"].startswith("fake/")} == {
        f"fake/{name}": status for name, status in broken.items()
    }
    assert lines[-1].startswith(f"[ingest] {len(records)}/{len(records)} ")
    faces = _examples(str(tmp_path / "out"))
    assert sum(len(v) for v in faces.values()) == sum(row["faces"] for row in rows) > 0
    clips = sum(
        1
        for split in contract.SPLIT_NAMES
        for _ in tf.data.TFRecordDataset(split_file(str(tmp_path / "out" / CLIPS_DIR), split), compression_type="GZIP")
    )
    assert clips == sum(row["clips"] for row in rows) > 0
    if workers == 2:
        single = tmp_path / "single"
        ingest_folder(records, ingest_config, str(single), 1)
        assert _examples(str(single)) == faces


def _three_good_and(sample_dataset, tmp_path, bad_name: str):
    """Records of three good videos and one more named `bad_name` (a copy of a good one)."""
    good = sorted(r.path for r in read_dataset(sample_dataset))
    os.makedirs(tmp_path / "data" / "real")
    for number, path in enumerate(good[:3]):
        shutil.copy(path, tmp_path / "data" / "real" / f"video_{number}.mp4")
    shutil.copy(good[0], tmp_path / "data" / "real" / bad_name)
    return read_dataset(str(tmp_path / "data"))


def _bad_file_reason(tmp_path, counts, bad_name: str) -> str:
    """The bad file's reason, after checking that only it failed and every face reported was written."""
    rows = {row["video"]: row for row in map(json.loads, open(tmp_path / "out" / contract.REPORT_FILE_NAME))}
    assert counts == {"ok": 3, "no_face": 0, "unreadable": 1, "rejected": 0, "no_person": 0}
    assert sum(len(v) for v in _examples(str(tmp_path / "out")).values()) == sum(r["faces"] for r in rows.values())
    return rows[f"real/{bad_name}"]["reason"]


def test_a_file_that_kills_its_worker_is_reported_and_the_others_are_ingested(sample_dataset, tmp_path):
    records = _three_good_and(sample_dataset, tmp_path, "crash.mp4")
    counts = ingest_folder(records, IngestConfig(**SMALL), str(tmp_path / "out"), 2, task=crash_on_marked_files)
    assert "worker process died" in _bad_file_reason(tmp_path, counts, "crash.mp4")


def test_a_file_that_hangs_is_stopped_and_reported_and_the_others_are_ingested(sample_dataset, tmp_path):
    records = _three_good_and(sample_dataset, tmp_path, "hang.mp4")
    started = time.monotonic()
    counts = ingest_folder(
        records, IngestConfig(**SMALL), str(tmp_path / "out"), 2, task=hang_on_marked_files, video_timeout_s=20
    )
    assert time.monotonic() - started < 120
    assert "still running after 20 s" in _bad_file_reason(tmp_path, counts, "hang.mp4")
