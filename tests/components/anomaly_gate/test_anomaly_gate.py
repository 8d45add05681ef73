"""The data-validation gate on real StatisticsGen and ExampleValidator outputs.

A deliberately broken example set (a label of 2, an unknown manipulation, a
missing image) must stop the run with a message naming each feature; a clean
set passes.
"""

import json
import os

import pytest
import tensorflow as tf
from tfx.components.example_validator import executor as validator_executor
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.types import standard_artifacts

from components.anomaly_gate import DataValidationResult
from components.anomaly_gate.executor import RESULT_FILE_NAME, Executor
from components.anomaly_gate.gate import DataAnomaliesError
from schemas import FACE_SCHEMA_PATH
from tests.helpers import make_artifact


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


def _validate(tmp_path, examples_by_split):
    """Runs the real StatisticsGen and ExampleValidator executors, then the gate."""
    examples = make_artifact(standard_artifacts.Examples, str(tmp_path / "examples"), list(examples_by_split))
    for split, serialized in examples_by_split.items():
        os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
        with tf.io.TFRecordWriter(os.path.join(examples.uri, f"Split-{split}", "data.gz"), "GZIP") as writer:
            for record in serialized:
                writer.write(record)
    schema = make_artifact(standard_artifacts.Schema, str(tmp_path / "schema"))
    tf.io.gfile.copy(FACE_SCHEMA_PATH, os.path.join(schema.uri, "schema.pbtxt"))
    statistics = make_artifact(standard_artifacts.ExampleStatistics, str(tmp_path / "statistics"))
    statistics_executor.Executor().Do(
        {"examples": [examples], "schema": [schema]}, {"statistics": [statistics]}, {"exclude_splits": "[]"}
    )
    anomalies = make_artifact(standard_artifacts.ExampleAnomalies, str(tmp_path / "anomalies"))
    validator_executor.Executor().Do(
        {"statistics": [statistics], "schema": [schema]}, {"anomalies": [anomalies]}, {"exclude_splits": "[]"}
    )
    result = make_artifact(DataValidationResult, str(tmp_path / "result"))
    try:
        Executor().Do({"anomalies": [anomalies]}, {"result": [result]}, {})
    finally:
        recorded = json.load(open(os.path.join(result.uri, RESULT_FILE_NAME)))
    return recorded


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
