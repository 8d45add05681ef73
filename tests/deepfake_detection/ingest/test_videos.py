"""Ingest of a run of videos with read-ahead: a decoder that never returns costs its video only."""

import os
import shutil
import time

import pytest

from deepfake_detection import contract
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import VideoRecord, read_dataset
from deepfake_detection.ingest.sampling import sample_frames
from deepfake_detection.ingest.videos import ingest_video, ingest_videos
from tests.helpers import DetectorOutputs, face_detection, write_numbered_video

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


@pytest.mark.parametrize(
    ("face_shaped", "status"), [(False, contract.STATUS_NO_PERSON), (True, contract.STATUS_OK), (None, "no_face")]
)
def test_the_ingest_reports_no_person_apart_from_no_face_and_keeps_a_rare_face(tmp_path, face_shaped, status):
    path = str(tmp_path / "clip.mp4")
    write_numbered_video(path, frames=40, size=(320, 240))
    by_frame = (
        {} if face_shaped is None else {i: [face_detection(i, (100, 80, 60, 60), 0.93, face_shaped)] for i in (3, 9)}
    )
    record = VideoRecord(path, "clip.mp4", 1, "dfdc", "face_swap", "clip")
    config = IngestConfig(frames_per_video=40, image_size=32)
    report = ingest_video(record, DetectorOutputs(by_frame), config).report
    assert report["status"] == status
    if status == contract.STATUS_NO_PERSON:
        assert "not_face_shaped" in report["reason"] and len(report["other_tracks"]) == 1
    if status == contract.STATUS_OK:
        assert report["faces"] == 2 and report["thin_evidence"] and not report["other_tracks"]
    if status == contract.STATUS_NO_FACE:
        assert report["reason"] == "no face detected in 40 sampled frames" and report["other_tracks"] == []
