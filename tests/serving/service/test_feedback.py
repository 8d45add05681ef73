"""Feedback on verdicts through a real HTTP server in front of the model server: each answer's opaque
`check_id`, 201 for the owner's feedback (with and without keys), 404 for another principal's check, 422 for a
bad label, the feedback beside the verdict in the history, uploads kept only with `--keep-media`, and the
`feedback` verb of the command line."""

import json
import os
import re

import httpx
import pytest

from deepfake_detection.evaluation import drift
from pipeline_runner import main
from serving.service.analysis import DetectionService
from serving.service.settings import ServiceSettings
from tests.serving.helpers import LIMITS, serving_on_loopback
from tests.serving.service.test_service_auth import astronaut_jpeg, bearer


def detect(url, key=None, name="face.jpg"):
    response = httpx.post(
        url + "/v1/detect", files={"files": (name, astronaut_jpeg())}, headers=bearer(key) if key else {}, timeout=120
    )
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


def feedback(url, check_id, body, key=None):
    return httpx.post(f"{url}/v1/checks/{check_id}/feedback", json=body, headers=bearer(key) if key else {}, timeout=30)


def history_of(url, check_id, key=None):
    items = httpx.get(url + "/v1/history?limit=50", headers=bearer(key) if key else {}, timeout=30).json()["items"]
    return next(item for item in items if item["check_id"] == check_id)


def test_feedback_without_keys_on_a_check_whose_media_was_not_kept(service):
    url, detection = service
    result = detect(url, name="unkept.jpg")
    check_id = result["check_id"]
    assert re.fullmatch("[0-9a-f]{32}", check_id)
    answer = feedback(url, check_id, {"label": "fake", "note": "I made this one"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["media_kept"] is False and body["feedback"]["label"] == "fake"
    assert body["verdict"] == result["verdict"] and "id" not in body and "media_uri" not in body
    row = history_of(url, check_id)
    assert row["feedback"]["label"] == "fake" and row["feedback"]["note"] == "I made this one"
    assert row["verdict"] == result["verdict"] and "id" not in row
    stored = detection.history.check(check_id)
    assert stored["media_uri"] is None and stored["sha256"] == result["sha256"]
    faces = json.loads(stored["input_stats"])
    assert len(faces) == len(result["faces"]) and faces[0]["frame_width"] == 512
    assert 0 < faces[0]["brightness"] < 255 and faces[0]["face_size"] > 0


@pytest.mark.parametrize(
    "body", [{"label": "maybe"}, {"label": None}, {"note": "no label"}, ["fake"], {"label": "fake", "note": 3}]
)
def test_bad_feedback_is_422(service, body):
    url, _ = service
    check_id = detect(url)["check_id"]
    answer = feedback(url, check_id, body)
    assert answer.status_code == 422 and answer.json()["error"]["kind"] == "bad_feedback"


def test_feedback_on_an_unknown_check_is_404(service):
    url, _ = service
    assert feedback(url, "0" * 32, {"label": "real"}).status_code == 404


@pytest.fixture(scope="module")
def keeping_service(model_server, tmp_path_factory):
    """The service with keys, keeping uploads in a folder for one hour, and a model base path where version 1
    carries training histograms of much darker faces than the astronaut's."""
    folder = tmp_path_factory.mktemp("kept")
    base = tmp_path_factory.mktemp("base")
    statistics = base / "faces" / "1" / drift.STATISTICS_DIR
    statistics.mkdir(parents=True)
    dark = drift.standard_histogram([10.0 + i % 5 for i in range(100)])
    (statistics / drift.TRAINING_HISTOGRAMS_FILE).write_text(json.dumps({"brightness": dark.to_dict()}))
    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path_factory.mktemp('feedback')}/history.sqlite",
        auth="keys",
        frames_per_video=6,
        keep_media=str(folder),
        keep_media_hours=1.0,
        model_base_path=str(base),
        **LIMITS,
    )
    detection = DetectionService(settings)
    keys = {name: detection.keys.create(name, admin=name == "root") for name in ("alice", "bob", "root")}
    with serving_on_loopback(detection) as url:
        yield url, detection, keys, folder
    detection.decoder.close()


def test_feedback_with_keys_only_on_ones_own_checks_and_the_upload_is_kept(keeping_service):
    url, detection, keys, folder = keeping_service
    result = detect(url, keys["alice"], "alice.jpg")
    check_id = result["check_id"]
    assert sorted(os.listdir(folder)) == [f"{check_id}.jpeg"]
    assert feedback(url, check_id, {"label": "real"}).status_code == 401
    refused = feedback(url, check_id, {"label": "real"}, keys["bob"])
    missing = feedback(url, "f" * 32, {"label": "real"}, keys["bob"])
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["error"]["kind"] == missing.json()["error"]["kind"] == "not_found"
    assert detection.history.check(check_id)["feedback_label"] is None
    answer = feedback(url, check_id, {"label": "real"}, keys["alice"])
    assert answer.status_code == 201 and answer.json()["media_kept"] is True
    assert history_of(url, check_id, keys["alice"])["feedback"]["label"] == "real"
    assert history_of(url, check_id, keys["root"])["feedback"]["label"] == "real"
    with open(folder / f"{check_id}.jpeg", "rb") as kept:
        assert kept.read() == astronaut_jpeg()


def test_metrics_export_the_drift_of_the_uploads_from_the_training_data(keeping_service):
    url, _, keys, _ = keeping_service
    detect(url, keys["root"], "drift.jpg")
    metrics = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {keys['root']}"}, timeout=30).text
    [drift_line] = [
        line for line in metrics.splitlines() if line.startswith('detection_input_drift{feature="brightness"}')
    ]
    assert float(drift_line.split()[-1]) == 1.0  # the astronaut is nothing like those dark faces
    assert 'detection_input_drift_threshold{feature="brightness"} 0.3' in metrics
    assert "detection_input_drift_faces" in metrics


def test_the_feedback_verb_sends_feedback_with_a_key(keeping_service, capsys):
    url, detection, keys, _ = keeping_service
    check_id = detect(url, keys["bob"], "bob.jpg")["check_id"]
    assert main(["feedback", check_id, "--label", "fake", "--service", url, "--api-key", keys["alice"]]) == 1
    assert "404" in capsys.readouterr().err
    code = main(
        ["feedback", check_id, "--label", "fake", "--note", "a mask", "--service", url, "--api-key", keys["bob"]]
    )
    assert code == 0 and "kept for the next span" in capsys.readouterr().out
    assert detection.history.check(check_id)["feedback_note"] == "a mask"
    with pytest.raises(SystemExit):
        main(["feedback", check_id, "--service", url])
