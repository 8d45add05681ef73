"""The real Evaluator and Pusher executors: a model worse than its baseline is neither blessed nor pushed.

Examples are bright faces labelled fake and dark faces labelled real; the
`good` model scores by brightness, the `bad` one by darkness, so each
threshold's outcome is known before TFMA runs.
"""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from deepfake_detection import contract, warmup
from deepfake_detection.evaluation import report, video_metrics
from deepfake_detection.evaluation.eval_config import BlessingConfig, build_eval_config
from deepfake_detection.models import export
from tests.helpers import face_crops, make_artifact

SLICE_VALUES = {"manipulation": (b"original", b"deepfake"), "face_size_bucket": (b"under_64", b"64_to_127")}


def _example(image, label, video, track, span=None):
    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    feature = {
        contract.IMAGE_KEY: b(tf.io.encode_png(image).numpy()),
        contract.LABEL_KEY: i(label),
        contract.VIDEO_ID_KEY: b(f"dfdc/v{video}".encode()),
        contract.TRACK_ID_KEY: i(track),
        contract.DATASET_KEY: b(b"dfdc"),
        contract.COMPRESSION_KEY: b(b"unknown"),
        contract.MANIPULATION_KEY: b(SLICE_VALUES["manipulation"][label]),
        contract.FACE_SIZE_BUCKET_KEY: b(SLICE_VALUES["face_size_bucket"][video % 2]),
    }
    if span is not None:
        feature[contract.SPAN_FEATURE] = i(span)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """8 videos x 3 faces: fakes brightened, reals darkened."""
    faces = [tf.io.decode_png(crop).numpy() for crop in face_crops(6)]
    artifact = make_artifact(standard_artifacts.Examples, str(tmp_path_factory.mktemp("examples")), ["test"])
    os.makedirs(os.path.join(artifact.uri, "Split-test"))
    with tf.io.TFRecordWriter(os.path.join(artifact.uri, "Split-test", "data.gz"), "GZIP") as writer:
        for video in range(8):
            label = video % 2
            for track in range(3):
                face = faces[(video + track) % len(faces)].astype(np.float32)
                shifted = np.clip(face * 0.5 + (110 if label else 0), 0, 255).astype(np.uint8)
                writer.write(_example(shifted, label, video, track % 2))
    return artifact


def _colour_model(weights, bias):
    """P(fake) = sigmoid(weights . the image's mean colour + bias)."""
    images = keras.Input((None, None, 3))
    mean = keras.layers.GlobalAveragePooling2D()(images)
    output = keras.layers.Dense(1, activation="sigmoid", name="fake_probability")(mean)
    model = keras.Model(images, output)
    model.get_layer("fake_probability").set_weights(
        [np.array(weights, np.float32).reshape(3, 1), np.array([bias], np.float32)]
    )
    return model


def _brightness_model(sign):
    return _colour_model([sign * 0.05] * 3, -sign * 0.05 * 3 * 100)


def _export(folder, model):
    artifact = make_artifact(standard_artifacts.Model, str(folder))
    export.export_saved_model(model, os.path.join(artifact.uri, export.SERVING_DIR))
    return artifact


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {
        name: _export(tmp_path_factory.mktemp(name), _brightness_model(sign))
        for name, sign in (("good", 1.0), ("bad", -1.0))
    }


def _evaluate(tmp_path, examples, model, baseline=None, blessing=None, **eval_config_args):
    evaluation = make_artifact(standard_artifacts.ModelEvaluation, str(tmp_path / "evaluation"))
    blessed = make_artifact(standard_artifacts.ModelBlessing, str(tmp_path / "blessing"))
    inputs = {"examples": [examples], "model": [model]}
    if baseline:
        inputs["baseline_model"] = [baseline]
    properties = {
        "eval_config": proto_utils.proto_to_json(
            build_eval_config(blessing or BlessingConfig(min_auc=0.7), **eval_config_args)
        ),
        "example_splits": json.dumps(["test"]),
        "fairness_indicator_thresholds": "null",
    }
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"], tmp_dir=str(tmp_path / "tmp")
    )
    evaluator_executor.Executor(context).Do(inputs, {"evaluation": [evaluation], "blessing": [blessed]}, properties)
    return evaluation, blessed


def _push(tmp_path, model, blessing):
    pushed = make_artifact(standard_artifacts.PushedModel, str(tmp_path / "pushed"))
    destination = {"filesystem": {"base_directory": str(tmp_path / "serving" / "faces")}}
    pusher_executor.Executor().Do(
        {"model": [model], "model_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": json.dumps(destination), "custom_config": "null"},
    )
    return pushed


@pytest.mark.e2e
def test_good_model_is_blessed_and_pushed_with_sliced_frame_and_video_metrics(tmp_path, examples, models):
    evaluation, blessing = _evaluate(tmp_path, examples, models["good"])
    assert report.is_blessed(blessing.uri) and report.blessing_failures(evaluation.uri) == []
    metrics = report.overall_metrics(evaluation.uri)
    assert metrics["auc"] == pytest.approx(1.0) and metrics["example_count"] == 24
    assert metrics["video_auc"] == pytest.approx(1.0) and metrics["video_count"] == 8
    assert 0 < metrics["video_log_loss"] < metrics["binary_crossentropy"] + 1
    summary = report.format_metrics(metrics)
    assert "log loss 0.00" in summary and "(8 videos, 24 faces)" in summary
    assert metrics["video_auc_unseen"] == pytest.approx(1.0) and metrics["video_fakes_unseen"] == 4
    assert report.format_cross_generator(metrics) == "unseen video AUC 1.000 | deepfake 1.00 | unknown 1.00"
    slices = {
        tuple((k.column, k.bytes_value) for k in m.slice_key.single_slice_keys)
        for m in tfma.load_metrics(evaluation.uri)
    }
    assert {(("manipulation", b"deepfake"),), (("face_size_bucket", b"under_64"),), (("dataset", b"dfdc"),)} <= slices

    pushed = _push(tmp_path, models["good"], blessing)
    assert pushed.get_int_custom_property("pushed") == 1
    version = pushed.get_string_custom_property("pushed_version")
    target = tmp_path / "serving" / "faces" / version
    assert (target / "saved_model.pb").exists() and os.path.exists(warmup.warmup_path(str(target)))


@pytest.mark.e2e
def test_model_worse_than_its_baseline_is_not_blessed_and_not_pushed(tmp_path, examples, models):
    lenient = BlessingConfig(min_auc=0.0)
    evaluation, blessing = _evaluate(tmp_path, examples, models["bad"], baseline=models["good"], blessing=lenient)
    assert not report.is_blessed(blessing.uri)
    failures = report.blessing_failures(evaluation.uri)
    assert any(line.startswith("auc change vs. baseline") for line in failures), failures
    pushed = _push(tmp_path, models["bad"], blessing)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not (tmp_path / "serving" / "faces").exists() or not os.listdir(tmp_path / "serving" / "faces")


@pytest.mark.e2e
def test_value_and_per_slice_thresholds_fail_a_weak_model(tmp_path, examples, models):
    strict = BlessingConfig(
        min_auc=0.7,
        slice_thresholds={"manipulation": {"binary_accuracy": 0.9}},
        min_video_auc=0.9,
        min_unseen_video_auc=0.6,
    )
    evaluation, blessing = _evaluate(tmp_path, examples, models["bad"], blessing=strict)
    assert not report.is_blessed(blessing.uri)
    failures = "\n".join(report.blessing_failures(evaluation.uri))
    assert "auc = 0.0000 on overall fails lower bound 0.7" in failures
    assert "binary_accuracy = 0.0000 on manipulation=deepfake fails lower bound 0.9" in failures
    assert f"{video_metrics.VIDEO_METRICS_NAME}_auc = 0.0000 on overall fails lower bound 0.9" in failures
    assert "video_auc_unseen = 0.0000 on overall fails lower bound 0.6" in failures


@pytest.mark.e2e
def test_unseen_bound_alone_refuses_a_good_model_that_cannot_show_unseen_kinds(tmp_path, examples, models):
    """The split holds no fakes of the held-out kind: the unseen AUC is undefined, so the bound fails."""
    bounded = BlessingConfig(min_auc=0.7, min_unseen_video_auc=0.5)
    evaluation, blessing = _evaluate(
        tmp_path, examples, models["good"], blessing=bounded, unseen_manipulations=("neural_textures",)
    )
    assert not report.is_blessed(blessing.uri)
    assert report.blessing_failures(evaluation.uri) == ["video_auc_unseen = nan on overall fails lower bound 0.5"]
    metrics = report.overall_metrics(evaluation.uri)
    assert metrics["auc"] == pytest.approx(1.0) and math.isnan(metrics["video_auc_unseen"])
    assert report.format_cross_generator(metrics) == (
        "unseen video AUC undefined (no unseen fake videos) | deepfake (seen) 1.00 | "
        "unknown undefined (no unseen fake videos at unknown)"
    )
    root = tmp_path / "root" / "Evaluator.meso4"
    for key, artifact in (("evaluation", evaluation), ("blessing", blessing)):
        (root / key).mkdir(parents=True)
        os.symlink(artifact.uri, root / key / "1")
    lines = report.evaluation_lines(str(tmp_path / "root"))
    assert lines[1] == f"{'':<16} {report.format_cross_generator(metrics)}"
    assert lines[2].endswith("NOT blessed, not pushed: video_auc_unseen = nan on overall fails lower bound 0.5")


def test_an_auc_over_one_class_reads_undefined_with_the_reason():
    from deepfake_detection.evaluation.report import format_auc

    one_class = {"auc": 0.0, contract.EVAL_REAL_EXAMPLES: 12, contract.EVAL_FAKE_EXAMPLES: 0}
    assert format_auc(one_class) == "undefined (the eval split has no fake example: 12 real, 0 fake)"
    assert format_auc({"auc": 0.8123, contract.EVAL_REAL_EXAMPLES: 3, contract.EVAL_FAKE_EXAMPLES: 4}) == "0.812"
    assert format_auc({"auc": 0.5}) == "0.500"


@pytest.fixture(scope="module")
def two_spans(tmp_path_factory):
    """Two spans of 8 videos x 2 grey faces: span 1's fakes are bluer, span 2's redder (the new kind of fake)."""
    artifact = make_artifact(standard_artifacts.Examples, str(tmp_path_factory.mktemp("spans")), ["test"])
    os.makedirs(os.path.join(artifact.uri, "Split-test"))
    with tf.io.TFRecordWriter(os.path.join(artifact.uri, "Split-test", "data.gz"), "GZIP") as writer:
        for span, channel in ((1, 2), (2, 0)):
            for video in range(8):
                label = video % 2
                for track in range(2):
                    face = np.full((32, 32, 3), 100 + 2 * track, np.uint8)
                    face[..., channel] += 60 * label
                    writer.write(_example(face, label, 10 * span + video, track, span))
    return artifact


@pytest.fixture(scope="module")
def span_models(tmp_path_factory):
    """`both` tells fakes by red and blue; `red_only`, retrained on span 2, has forgotten span 1's blue fakes
    (AUC 0.5 there, 0.75 overall); `both_again` is a retrained `both`, a little different and as good."""
    return {
        name: _export(tmp_path_factory.mktemp(name), _colour_model(weights, bias))
        for name, weights, bias in (
            ("both", [0.05, 0.0, 0.05], -11.5),
            ("red_only", [0.05, 0.0, 0.0], -6.5),
            ("both_again", [0.06, 0.0, 0.04], -11.5),
        )
    }


@pytest.mark.e2e
def test_the_forgetting_guard_refuses_a_model_that_forgets_an_earlier_span(tmp_path, two_spans, span_models):
    """The overall AUC drops by 0.25, within the allowed 0.3; span 1's by 0.5: only the guard fails."""
    lenient = BlessingConfig(min_auc=0.7, max_auc_drop=0.3)
    evaluation, blessing = _evaluate(
        tmp_path, two_spans, span_models["red_only"], baseline=span_models["both"], blessing=lenient
    )
    assert not report.is_blessed(blessing.uri)
    assert report.overall_metrics(evaluation.uri)["auc"] == pytest.approx(0.75, abs=0.01)
    [failure] = report.blessing_failures(evaluation.uri)
    assert failure.startswith("auc change vs. baseline = -0.5") and "on span=1 fails allowed change -0.3" in failure
    guard = report.forgetting_guard(evaluation.uri)
    assert guard["max_auc_drop"] == pytest.approx(0.3) and not guard["held"]
    assert [(s["span"], s["held"]) for s in guard["spans"]] == [(1, False), (2, True)]
    assert [round(s["candidate_auc"], 2) for s in guard["spans"]] == [0.5, 1.0]
    assert [round(s["baseline_auc"], 2) for s in guard["spans"]] == [1.0, 1.0]
    assert report.format_forgetting_guard(guard) == (
        "forgetting guard FAILED (AUC per span, candidate/baseline, allowed drop 0.300): "
        "span 1 0.500/1.000 (dropped), span 2 1.000/1.000"
    )


@pytest.mark.e2e
def test_the_forgetting_guard_passes_a_model_that_keeps_every_span(tmp_path, two_spans, span_models):
    evaluation, blessing = _evaluate(
        tmp_path, two_spans, span_models["both_again"], baseline=span_models["both"], blessing=BlessingConfig()
    )
    assert report.is_blessed(blessing.uri), report.blessing_failures(evaluation.uri)
    guard = report.forgetting_guard(evaluation.uri)
    assert guard["held"] and guard["max_auc_drop"] == 0.0
    assert [(s["span"], round(s["candidate_auc"], 2), s["held"]) for s in guard["spans"]] == [
        (1, 1.0, True),
        (2, 1.0, True),
    ]
    first_run, _ = _evaluate(tmp_path / "first", two_spans, span_models["both"])
    assert report.forgetting_guard(first_run.uri) is None, "no baseline: nothing to forget yet"
    assert report.format_forgetting_guard(None) == "forgetting guard: no baseline yet"
