"""Drift between uploads and the training data: `deepfake-pipeline drift` (through TFDV) and the service's
gauge (without TensorFlow) find darker, smaller, more compressed uploads drifted and uploads drawn like the
training data not; the gauge's divergences are TFDV's, exactly on the same histograms and closely on the
window's own."""

import datetime

import cv2
import numpy as np
import pandas as pd
import prometheus_client
import pytest
import tensorflow_data_validation as tfdv

from components.model_card.training_statistics import write_training_statistics
from deepfake_detection import contract
from deepfake_detection.evaluation import drift
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.ingest.sampling import SampledFrame, sample_frames
from deepfake_detection.ingest.videos import find_faces
from pipeline_runner import main
from serving.client.drift import compare, since_time
from serving.service import history
from serving.service.drift import DriftMonitor
from serving.service.input_stats import face_statistics

CONFIG = IngestConfig(frames_per_video=24)


def darker_smaller_compressed(image: np.ndarray) -> np.ndarray:
    """What another platform's evening uploads look like: half the light, three quarters of the size, heavy JPEG
    (darker or smaller still, and the detector finds too few faces in the small sample videos to compare)."""
    dark = (image.astype(np.float32) * 0.5).astype(np.uint8)
    small = cv2.resize(dark, (image.shape[1] * 3 // 4, image.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA)
    return cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], cv2.IMREAD_COLOR)


def faces_of(frames, detector):
    """The service's per-face statistics of some frames: the same face path and the same description."""
    found = find_faces(frames, detector, CONFIG)
    faces = [
        {"frame_index": d.frame_index, "box": list(d.box), "confidence": d.confidence}
        for track in found.tracks
        for d in track.detections
    ]
    return face_statistics(frames, faces)


@pytest.fixture(scope="module")
def statistics(sample_dataset):
    """Per-video face statistics: of the even frames (the training data), of the odd frames as they are (uploads
    drawn like it) and of the odd frames darker, smaller and compressed."""
    detector = FaceDetector.from_config(CONFIG)
    training, alike, degraded = [], [], []
    for record in read_dataset(sample_dataset):
        frames = sample_frames(record.path, CONFIG)[1]
        even, odd = frames[::2], frames[1::2]
        training += faces_of(even, detector)
        alike.append(faces_of(odd, detector))
        worse = [SampledFrame(f.index, f.timestamp, darker_smaller_compressed(f.image)) for f in odd]
        degraded.append(faces_of(worse, detector))
    alike, degraded = [f for f in alike if f], [f for f in degraded if f]
    assert len(training) >= 20 and sum(map(len, alike)) >= 20 and sum(map(len, degraded)) >= 10
    return training, alike, degraded


@pytest.fixture(scope="module")
def version(statistics, tmp_path_factory):
    """A pushed version's folder carrying the training faces' TFDV statistics, as the model card step writes them."""
    folder = tmp_path_factory.mktemp("faces") / "1"
    source = tmp_path_factory.mktemp("statistics") / "FeatureStats.pb"
    source.write_bytes(tfdv.generate_statistics_from_dataframe(pd.DataFrame(statistics[0])).SerializeToString())
    write_training_statistics(str(source), str(folder))
    return folder


def history_with(folder, per_video):
    folder.mkdir(exist_ok=True)
    url = f"sqlite:///{folder}/history.sqlite"
    store = history.History(url)
    for number, faces in enumerate(per_video):
        store.record(history.Check(f"v{number}.mp4", "video/mp4", 1, "0" * 64, "real", 0.1, input_stats=faces))
    store.close()
    return url


def drifted(measured):
    return {feature for feature, distance, threshold in measured if distance > threshold}


def test_the_drift_verb_finds_degraded_uploads_drifted_and_alike_ones_not(statistics, version, tmp_path, capsys):
    _, alike, degraded = statistics
    alike_url = history_with(tmp_path / "alike", alike)
    assert main(["drift", "--history-url", alike_url, "--model-dir", str(version)]) == 0
    out = capsys.readouterr().out
    assert all(feature in out for feature in drift.FEATURES) and "yes" not in out
    degraded_url = history_with(tmp_path / "degraded", degraded)
    assert main(["drift", "--history-url", degraded_url, "--model-dir", str(version), "--since", "1h"]) == 4
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    for feature in (contract.BRIGHTNESS_KEY, contract.FACE_SIZE_KEY, contract.FRAME_WIDTH_KEY):
        assert lines[feature][-1] == "yes" and float(lines[feature][1]) > float(lines[feature][2])
    future = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
    assert main(["drift", "--history-url", degraded_url, "--model-dir", str(version), "--since", future]) == 2


def test_a_version_without_training_statistics_has_nothing_to_compare(tmp_path, capsys):
    url = history_with(tmp_path, [[{"brightness": 1.0}]])
    assert main(["drift", "--history-url", url, "--model-dir", str(tmp_path)]) == 2
    assert "carries no training statistics" in capsys.readouterr().err


def test_the_service_divergence_is_tfdvs_on_the_same_histograms(statistics):
    training, _, degraded = statistics
    previous = tfdv.generate_statistics_from_dataframe(pd.DataFrame(training))
    current = tfdv.generate_statistics_from_dataframe(pd.DataFrame([f for faces in degraded for f in faces]))
    schema = tfdv.infer_schema(previous)
    for feature in drift.FEATURES:
        tfdv.get_feature(schema, feature).drift_comparator.jensen_shannon_divergence.threshold = 0.3
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    tfdv_values = {".".join(i.path.step): i.drift_measurements[0].value for i in anomalies.drift_skew_info}
    ours_histograms, theirs_histograms = drift.histograms_of(current), drift.histograms_of(previous)
    assert set(tfdv_values) == set(drift.FEATURES)
    for feature, value in tfdv_values.items():
        ours = drift.jensen_shannon_divergence(ours_histograms[feature], theirs_histograms[feature])
        assert ours == pytest.approx(value, abs=1e-9), feature


def test_the_gauge_over_a_rolling_window_matches_the_drift_verb(statistics, version):
    training_file = str(version / drift.STATISTICS_DIR / drift.TRAINING_STATISTICS_FILE)
    _, alike, degraded = statistics
    monitor = DriftMonitor(lambda v: drift.read_training_histograms(str(version)) if v == 1 else None, window_s=60)
    for faces in degraded:
        monitor.observe(1, faces, now=1000.0)
    measured = compare([f for faces in degraded for f in faces], training_file)
    gauge = monitor.distances(now=1010.0)
    for feature, distance, _ in measured:
        assert gauge[feature] == pytest.approx(distance, abs=0.1), feature
    assert {f for f, d in gauge.items() if d > drift.DRIFT_THRESHOLDS[f]} == drifted(measured)
    assert monitor.distances(now=1100.0) == {}  # the window has moved past them
    for faces in alike:
        monitor.observe(1, faces, now=2000.0)
    assert not {f for f, d in monitor.distances(now=2000.0).items() if d > drift.DRIFT_THRESHOLDS[f]}


def test_the_gauges_are_scraped_from_the_window(statistics, version):
    _, alike, _ = statistics
    monitor = DriftMonitor(lambda v: drift.read_training_histograms(str(version)), window_s=60)
    for faces in alike:
        monitor.observe(1, faces)
    registry = prometheus_client.CollectorRegistry()
    registry.register(monitor)
    assert registry.get_sample_value("detection_input_drift", {"feature": "brightness"}) is not None
    assert registry.get_sample_value("detection_input_drift_threshold", {"feature": "brightness"}) == 0.3
    assert registry.get_sample_value("detection_input_drift_faces") == sum(len(f) for f in alike)


def test_a_version_without_statistics_exports_no_divergence(statistics):
    monitor = DriftMonitor(lambda version: None, window_s=60)
    monitor.observe(3, statistics[1][0])
    assert monitor.distances() == {}


def test_since_takes_durations_and_iso_times():
    now = datetime.datetime(2026, 12, 6, 12, tzinfo=datetime.timezone.utc)
    assert since_time("90m", now) == now - datetime.timedelta(minutes=90)
    assert since_time("7d", now) == now - datetime.timedelta(days=7)
    assert since_time("2026-12-01T00:00:00", now) == datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(ValueError, match="duration"):
        since_time("yesterday", now)
