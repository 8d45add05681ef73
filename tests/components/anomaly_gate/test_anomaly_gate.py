"""The data-validation gate on real StatisticsGen and ExampleValidator outputs.

A deliberately broken example set (a label of 2, an unknown manipulation, a
missing image) must stop the run with a message naming each feature; a clean
set passes.
"""

import json
import os

import pytest
import tensorflow as tf
from tfx.components.distribution_validator import executor as distribution_executor
from tfx.components.example_validator import executor as validator_executor
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.types import standard_artifacts

from components.anomaly_gate import DataValidationResult
from components.anomaly_gate.executor import RESULT_FILE_NAME, Executor
from components.anomaly_gate.gate import DataAnomaliesError, DataDriftError, drift_line
from deepfake_detection import sample_data
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import in_span, read_dataset
from deepfake_detection.ingest.videos import ingest_video
from pipeline.runners import flags
from schemas import FACE_SCHEMA_PATH
from tests.helpers import make_artifact

VIDEOS_PER_SPAN = 8


def _example(label=0, manipulation=b"original", with_image=True):
    feature = {
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "video_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"dfdc/v"])),
        "source_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"dfdc:v"])),
        "dataset": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"dfdc"])),
        "manipulation": tf.train.Feature(bytes_list=tf.train.BytesList(value=[manipulation])),
        "compression": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"unknown"])),
        "frame_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
        "timestamp": tf.train.Feature(float_list=tf.train.FloatList(value=[0.2])),
        "face_confidence": tf.train.Feature(float_list=tf.train.FloatList(value=[0.99])),
        "face_box": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2, 30, 40])),
        "face_size": tf.train.Feature(int64_list=tf.train.Int64List(value=[30])),
        "face_size_bucket": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"under_64"])),
        "track_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
        "face_landmarks": tf.train.Feature(
            float_list=tf.train.FloatList(value=[0.3, 0.4, 0.7, 0.4, 0.5, 0.55, 0.35, 0.7, 0.65, 0.7])
        ),
        "span": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
        "frame_width": tf.train.Feature(int64_list=tf.train.Int64List(value=[320])),
        "frame_height": tf.train.Feature(int64_list=tf.train.Int64List(value=[240])),
        "codec": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"avc1"])),
    }
    for name, value in (("brightness", 120.0), ("contrast", 40.0), ("sharpness", 90.0), ("blockiness", 1.1)):
        feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    feature["frame_rate"] = tf.train.Feature(float_list=tf.train.FloatList(value=[25.0]))
    if with_image:
        png = tf.io.encode_png(tf.zeros((8, 8, 3), tf.uint8)).numpy()
        feature["image"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _statistics(folder, examples_by_split, span=0):
    """The schema and the real StatisticsGen executor's statistics of serialized examples by split."""
    examples = make_artifact(standard_artifacts.Examples, str(folder / "examples"), list(examples_by_split))
    examples.span = span
    for split, serialized in examples_by_split.items():
        os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
        with tf.io.TFRecordWriter(os.path.join(examples.uri, f"Split-{split}", "data.gz"), "GZIP") as writer:
            for record in serialized:
                writer.write(record)
    schema = make_artifact(standard_artifacts.Schema, str(folder / "schema"))
    tf.io.gfile.copy(FACE_SCHEMA_PATH, os.path.join(schema.uri, "schema.pbtxt"))
    statistics = make_artifact(standard_artifacts.ExampleStatistics, str(folder / "statistics"))
    statistics_executor.Executor().Do(
        {"examples": [examples], "schema": [schema]}, {"statistics": [statistics]}, {"exclude_splits": "[]"}
    )
    return schema, statistics


def _gate(folder, inputs, exec_properties=None):
    """Runs the gate; returns what it recorded, whether it passed or failed."""
    result = make_artifact(DataValidationResult, str(folder / "result"))
    try:
        Executor().Do(inputs, {"result": [result]}, exec_properties or {})
    finally:
        recorded = json.load(open(os.path.join(result.uri, RESULT_FILE_NAME)))
    return recorded


def _validate(tmp_path, examples_by_split):
    """Runs the real StatisticsGen and ExampleValidator executors, then the gate."""
    schema, statistics = _statistics(tmp_path, examples_by_split)
    anomalies = make_artifact(standard_artifacts.ExampleAnomalies, str(tmp_path / "anomalies"))
    validator_executor.Executor().Do(
        {"statistics": [statistics], "schema": [schema]}, {"anomalies": [anomalies]}, {"exclude_splits": "[]"}
    )
    return _gate(tmp_path, {"anomalies": [anomalies]})


def test_clean_examples_pass(tmp_path):
    recorded = _validate(tmp_path, {"train": [_example(0), _example(1)] * 5, "eval": [_example(1)]})
    assert recorded == {"splits": ["eval", "train"], "anomalies": [], "drift": None, "on_drift": "warn"}


def test_broken_examples_stop_the_run_naming_each_feature(tmp_path):
    broken = [_example(2), _example(0, manipulation=b"made_up"), _example(1, with_image=False)]
    with pytest.raises(DataAnomaliesError) as error:
        _validate(tmp_path, {"train": [_example(0)] * 5 + broken, "eval": [_example(1)]})
    message = str(error.value)
    assert "stops before training" in message
    assert "split 'train', feature 'label'" in message
    assert "split 'train', feature 'manipulation'" in message
    assert "split 'train', feature 'image'" in message
    assert not any("'eval'" in line for line in error.value.messages)


@pytest.fixture(scope="module")
def span_statistics(tmp_path_factory):
    """The schema and the statistics of the face examples of three spans of generated videos: span 1, span 2
    drawn the same way (new identities), span 3 with new identities made darker, smaller and more compressed."""
    root = tmp_path_factory.mktemp("spans")
    sample_data.generate(str(root / "1"), num_videos=VIDEOS_PER_SPAN, seed=1, seconds=1.0)
    sample_data.generate(str(root / "2"), num_videos=VIDEOS_PER_SPAN, seed=2, seconds=1.0)
    sample_data.generate(str(root / "before_drift"), num_videos=VIDEOS_PER_SPAN, seed=3, seconds=1.0)
    sample_data.drifted_copy(str(root / "before_drift"), str(root / "3"))
    ingest_config = IngestConfig(image_size=64)
    detector = FaceDetector.from_config(ingest_config)
    statistics = {}
    for span in (1, 2, 3):
        examples = [
            example
            for record in in_span(read_dataset(str(root / str(span))), span, None)
            for example in ingest_video(record, detector, ingest_config).face_examples
        ]
        statistics[span] = _statistics(root / f"statistics_{span}", {"train": examples}, span)
    return statistics


def _drift_inputs(folder, span_statistics, span, baseline_span):
    """The gate's inputs: the real ExampleValidator on the new span (the ingest's examples match the curated
    schema) and the real DistributionValidator against the baseline span, thresholds from schemas/."""
    schema, statistics = span_statistics[span]
    _, baseline = span_statistics[baseline_span]
    drift = make_artifact(standard_artifacts.ExampleAnomalies, str(folder / "drift"))
    distribution_executor.Executor().Do(
        {"statistics": [statistics], "baseline_statistics": [baseline]},
        {"anomalies": [drift]},
        {"distribution_validator_config": flags.drift_config(), "include_split_pairs": "null"},
    )
    anomalies = make_artifact(standard_artifacts.ExampleAnomalies, str(folder / "anomalies"))
    validator_executor.Executor().Do(
        {"statistics": [statistics], "schema": [schema]}, {"anomalies": [anomalies]}, {"exclude_splits": "[]"}
    )
    return {"anomalies": [anomalies], "drift": [drift], "baseline_statistics": [baseline]}


def test_a_span_drawn_the_same_way_shows_no_drift(tmp_path, span_statistics):
    recorded = _gate(tmp_path, _drift_inputs(tmp_path, span_statistics, 2, 1), {"on_drift": "block"})
    assert recorded["anomalies"] == []
    assert drift_line(recorded["drift"]) == "Drift (span 2 against span 1): none"


def test_a_darker_smaller_more_compressed_span_drifts_and_blocks_when_told(tmp_path, span_statistics):
    inputs = _drift_inputs(tmp_path, span_statistics, 3, 2)
    recorded = _gate(tmp_path / "warn", inputs, {"on_drift": "warn"})
    line = drift_line(recorded["drift"])
    flagged = {feature["feature"] for feature in recorded["drift"]["features"]}
    assert (
        line.startswith("Drift (span 3 against span 2): ") and {"frame_width", "frame_height", "brightness"} <= flagged
    )
    assert all(f["distance"] > f["threshold"] for f in recorded["drift"]["features"])
    with pytest.raises(DataDriftError, match="span 3 against span 2"):
        _gate(tmp_path / "block", inputs, {"on_drift": "block"})
