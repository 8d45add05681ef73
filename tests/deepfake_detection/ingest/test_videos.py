"""Ingest of a run of videos with read-ahead: a decoder that never returns costs its video only."""

import os
import shutil
import time

from deepfake_detection import contract
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.ingest.sampling import sample_frames
from deepfake_detection.ingest.videos import ingest_videos

SMALL = {"frames_per_video": 6, "image_size": 64, "clip_length": 3}


def hang_on_marked_files(path, ingest_config):
    """A frame reader that never returns on files named `hang*`, like a decoder stuck in a loop."""
    if os.path.basename(path).startswith("hang"):
        time.sleep(3600)
    return sample_frames(path, ingest_config)


def test_a_video_whose_read_hangs_is_reported_and_the_run_goes_on(sample_dataset, tmp_path):
    good = sorted(r.path for r in read_dataset(sample_dataset))
    os.makedirs(tmp_path / "real")
    for name, path in (("a.mp4", good[0]), ("hang.mp4", good[0]), ("b.mp4", good[1])):
        shutil.copy(path, tmp_path / "real" / name)
    records = sorted(read_dataset(str(tmp_path)), key=lambda record: record.path)
    ingest_config = IngestConfig(**SMALL)
    started = time.monotonic()
    results = list(
        ingest_videos(records, FaceDetector.from_config(ingest_config), ingest_config, 3.0, hang_on_marked_files)
    )
    assert time.monotonic() - started < 60
    rows = {os.path.basename(result.report["video"]): result.report for result in results}
    assert sorted(rows) == ["a.mp4", "b.mp4", "hang.mp4"]
    assert rows["hang.mp4"]["status"] == contract.STATUS_UNREADABLE
    assert "still not read after 3 s" in rows["hang.mp4"]["reason"]
    assert rows["a.mp4"]["status"] == rows["b.mp4"]["status"] == contract.STATUS_OK
    assert all(result.face_examples for result in results if result.report["status"] == contract.STATUS_OK)
