"""The Beam ingest transform with assert_that: examples, clips and a report row for every video."""

import json
import os
import shutil

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from components.video_example_gen import transforms
from deepfake_detection import contract
from deepfake_detection.ingest import report as report_lib
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from tests.helpers import BROKEN_FILE_LIMITS, make_broken_files

FACE_FEATURES = {
    "image",
    "label",
    "video_id",
    "source_id",
    "dataset",
    "manipulation",
    "frame_index",
    "face_confidence",
    "compression",
    "timestamp",
    "face_box",
    "face_size",
    "face_size_bucket",
    "track_id",
    "face_landmarks",
    "span",
    "brightness",
    "contrast",
    "sharpness",
    "blockiness",
    "frame_width",
    "frame_height",
    "frame_rate",
    "codec",
}
SMALL = {"frames_per_video": 6, "image_size": 64, "clip_length": 3}


def _parse(serialized):
    return tf.train.Example.FromString(serialized).features.feature


def test_ingest_emits_faces_clips_and_a_report_row_per_video(sample_dataset):
    records = read_dataset(sample_dataset)
    labels = {r.video_id: r.label for r in records}

    def check_faces(items):
        assert items, "no face examples"
        by_video = {}
        for split, serialized in items:
            feature = _parse(serialized)
            assert set(feature) == FACE_FEATURES
            video_id = feature["video_id"].bytes_list.value[0].decode()
            assert feature["label"].int64_list.value[0] == labels[video_id]
            assert 0.9 <= feature["face_confidence"].float_list.value[0] <= 1.0
            assert tf.io.decode_png(feature["image"].bytes_list.value[0]).shape == (64, 64, 3)
            landmarks = feature["face_landmarks"].float_list.value
            assert len(landmarks) == 10 and all(0.0 < v < 1.0 for v in landmarks), "five points inside the crop"
            assert landmarks[1] < landmarks[7] and landmarks[0] < landmarks[2], "eyes above the mouth, left of right"
            assert split in contract.SPLIT_NAMES
            by_video.setdefault(video_id, set()).add(split)
        assert all(len(splits) == 1 for splits in by_video.values())

    def check_clips(items):
        assert items, "no clip examples"
        for _, serialized in items:
            feature = _parse(serialized)
            frames = feature["frames"].bytes_list.value
            indices = list(feature["frame_indices"].int64_list.value)
            assert len(frames) == feature["clip_length"].int64_list.value[0] == 3
            assert indices == sorted(indices)

    with beam.Pipeline() as pipeline:
        outputs = pipeline | transforms.IngestVideos(records, IngestConfig(**SMALL))
        statuses = outputs["report"] | beam.Map(lambda line: (json.loads(line)["video"], json.loads(line)["status"]))
        assert_that(statuses, equal_to([(r.relative_path, "ok") for r in records]), label="AllOk")
        assert_that(outputs["faces"], check_faces, label="Faces")
        assert_that(outputs["clips"], check_clips, label="Clips")


@pytest.fixture(scope="module")
def broken_dataset(tmp_path_factory, sample_dataset):
    root = tmp_path_factory.mktemp("broken")
    good = sorted(r.path for r in read_dataset(sample_dataset))[0]
    expected = make_broken_files(str(root / "real"), good)
    shutil.copy(good, root / "real" / "good.mp4")
    expected["good.mp4"] = "ok"
    return str(root), {f"real/{name}": status for name, status in expected.items()}


def test_every_broken_file_kind_ends_in_its_status(broken_dataset):
    root, expected = broken_dataset
    records = read_dataset(root)
    ingest_config = IngestConfig(**SMALL, **BROKEN_FILE_LIMITS)
    with beam.Pipeline() as pipeline:
        outputs = pipeline | transforms.IngestVideos(records, ingest_config)
        rows = outputs["report"] | beam.Map(json.loads)
        statuses = rows | beam.Map(lambda row: (row["video"], row["status"]))
        assert_that(statuses, equal_to(sorted(expected.items())), label="Statuses")
        reasons = rows | beam.Filter(lambda row: row["status"] != "ok") | beam.Map(lambda row: bool(row["reason"]))
        assert_that(reasons, equal_to([True] * (len(expected) - 1)), label="Reasons")


def test_written_splits_and_report_account_for_every_video(broken_dataset, tmp_path):
    root, expected = broken_dataset
    records = read_dataset(root)
    output = str(tmp_path)
    with beam.Pipeline() as pipeline:
        outputs = pipeline | transforms.IngestVideos(records, IngestConfig(**SMALL, **BROKEN_FILE_LIMITS))
        _ = outputs["faces"] | transforms.WriteSplits(output)
        _ = outputs["report"] | transforms.WriteReport(output)
    report_path = os.path.join(output, contract.REPORT_FILE_NAME)
    rows = [json.loads(line) for line in open(report_path)]
    assert [row["video"] for row in rows] == sorted(expected)
    counts = report_lib.summarize_report(report_path)
    assert counts == {"ok": 1, "no_face": 1, "unreadable": 6, "rejected": 3, "no_person": 0}
    expected_line = "Ingested 11 videos: ok 1, no_face 1, unreadable 6, rejected 3, no_person 0"
    assert report_lib.summary_line(counts) == expected_line
    faces_written = sum(
        1
        for split in contract.SPLIT_NAMES
        for _ in tf.data.TFRecordDataset(
            tf.io.gfile.glob(os.path.join(output, f"Split-{split}", "*")), compression_type="GZIP"
        )
    )
    assert faces_written == next(row["faces"] for row in rows if row["status"] == "ok") > 0
