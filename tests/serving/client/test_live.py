"""`live SOURCE`: rolling verdicts on a file played as it plays, on a file read as fast as it goes, and on a
stream served by another process (FFmpeg's HTTP server), in the issue's JSON line format."""

import json
import os
import subprocess
import sys
import time

import cv2
import imageio_ffmpeg
import pytest

from deepfake_detection import contract
from deepfake_detection.ingest.readers import read_dataset
from pipeline_runner import main
from tests.helpers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UPDATE_KEYS = {"media_time_s", "latency_s", "verdict", "fake_probability", "persons"}


@pytest.fixture(scope="module")
def video(sample_dataset) -> str:
    return sorted(r.path for r in read_dataset(sample_dataset))[0]


def _check_update(update: dict) -> None:
    assert set(update) == UPDATE_KEYS and update["latency_s"] >= 0
    assert update["verdict"] in ("fake", "uncertain", "real", "no_face")
    for person in update["persons"]:
        assert set(person) == {"track_id", "fake_probability", "tier", "box"} and len(person["box"]) == 4


def test_a_file_without_realtime_is_read_whole_at_the_sample_rate(edge_model, video, capsys):
    command = ["live", "--local", "--model-dir", edge_model, "--runtime", contract.RUNTIME_TFLITE_FP16]
    assert main([*command, "--sample-fps", "5", "--json", video]) == 0
    updates = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    capture = cv2.VideoCapture(video)
    fps, frames = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    step = round(fps / 5)
    assert [u["media_time_s"] for u in updates] == [round(i / fps, 3) for i in range(0, frames, step)]
    for update in updates:
        _check_update(update)
    assert any(update["persons"] for update in updates)


def test_a_file_with_realtime_plays_at_its_own_frame_rate(edge_model, video):
    command = [sys.executable, "-m", "pipeline_runner", "live", "--local", "--model-dir", edge_model]
    process = subprocess.Popen(
        [*command, "--runtime", contract.RUNTIME_ONNX, "--realtime", "--json", video],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    arrivals = [(time.monotonic(), json.loads(line)) for line in process.stdout]
    assert process.wait(timeout=120) == 0 and len(arrivals) >= 3
    (first_at, first), (last_at, last) = arrivals[0], arrivals[-1]
    # Played as it plays: the updates arrive as far apart as their frames are in the video.
    assert last_at - first_at == pytest.approx(last["media_time_s"] - first["media_time_s"], abs=0.4)
    for _, update in arrivals:
        _check_update(update)


def _listening(port: int) -> bool:
    """Whether a socket listens on loopback `port` (from /proc, without connecting: FFmpeg serves one client)."""
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == f"0100007F:{port:04X}" and line.split()[3] == "0A" for line in f.readlines()[1:])


def test_a_stream_served_by_another_process(edge_model, video, capsys):
    url = f"http://127.0.0.1:{free_port()}/live.ts"
    source = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-re", "-i", video, "-c:v", "mpeg1video"]
    server = subprocess.Popen([*source, "-r", "30", "-f", "mpegts", "-listen", "1", url])
    try:
        deadline = time.monotonic() + 30
        while not _listening(int(url.split(":")[2].split("/")[0])) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert main(["live", "--local", "--model-dir", edge_model, "--json", url]) == 0
    finally:
        server.kill()
        server.wait()
    updates = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert updates and any(update["persons"] for update in updates)
    for update in updates:
        _check_update(update)
    times = [update["media_time_s"] for update in updates]
    assert times == sorted(times)


def _taken_times(video: str, sample_fps: float) -> list:
    capture = cv2.VideoCapture(video)
    fps, frames = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return [round(i / fps, 3) for i in range(0, frames, round(fps / sample_fps))]


@pytest.fixture
def live_service(edge_model, tmp_path):
    """The detection service on loopback, its model the edge model's ONNX export run in its process."""
    from serving.client.runtimes import load_model
    from serving.service.analysis import DetectionService
    from serving.service.settings import ServiceSettings
    from tests.serving.helpers import serving_on_loopback

    def start(**overrides):
        settings = ServiceSettings(history_url=f"sqlite:///{tmp_path}/history.sqlite", **overrides)
        service = DetectionService(settings, model=load_model(edge_model, contract.RUNTIME_ONNX))
        return service, serving_on_loopback(service)

    return start


def _live(*arguments: str) -> subprocess.CompletedProcess:
    """`live` in its own process (uvicorn's logging, set up in this one, must not write to pytest's capture)."""
    command = [sys.executable, "-m", "pipeline_runner", "live", *arguments]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_live_service_prints_the_routes_updates_as_local_does(live_service, video):
    service, serving = live_service()
    with serving as url:
        done = _live("--service", url, "--sample-fps", "5", "--json", video)
    service.close()
    assert done.returncode == 0, done.stderr
    updates = [json.loads(line) for line in done.stdout.splitlines()]
    assert [u["media_time_s"] for u in updates] == _taken_times(video, 5)
    for update in updates:
        _check_update(update)
    assert any(update["persons"] for update in updates)
    assert service.admission.admitted == 0


def test_live_service_without_a_key_says_the_service_refused(live_service, video):
    service, serving = live_service(auth="keys")
    key = service.keys.create("alice")
    with serving as url:
        refused = _live("--service", url, "--max-seconds", "0.2", "--json", video)
        allowed = _live("--service", url, "--api-key", key, "--max-seconds", "0.2", "--json", video)
    service.close()
    assert refused.returncode == 2 and "1008" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout.splitlines()[0])["media_time_s"] == 0.0


def test_an_unreachable_service_and_an_unopenable_source_say_why(edge_model, video, tmp_path, capsys):
    assert main(["live", "--service", f"http://127.0.0.1:{free_port()}", video]) == 2
    assert "Cannot open ws://127.0.0.1" in capsys.readouterr().err
    missing = str(tmp_path / "nothing.mp4")
    assert main(["live", "--local", "--model-dir", edge_model, missing]) == 2
    assert "Cannot open" in capsys.readouterr().err


def test_each_frame_is_detected_once_across_the_windows_that_share_it(video):
    from deepfake_detection.ingest.detector import FaceDetector
    from deepfake_detection.ingest.ingest_config import IngestConfig
    from serving.service.live_window import RememberingDetector

    detector = FaceDetector.from_config(IngestConfig())
    seen = []

    class Recording:
        def detect(self, frames, frame_indices):
            seen.extend(frame_indices)
            return detector.detect(frames, frame_indices)

    capture = cv2.VideoCapture(video)
    frames = [capture.read()[1] for _ in range(6)]
    remembering = RememberingDetector(Recording())
    windows = [list(range(max(0, end - 4), end)) for end in range(1, 7)]
    answers = [remembering.detect([frames[i] for i in window], window) for window in windows]
    assert seen == list(range(6))
    for window, answer in zip(windows, answers, strict=True):
        for index, faces in zip(window, answer, strict=True):
            alone = detector.detect([frames[index]], [index])[0]
            assert [f.box for f in faces] == [f.box for f in alone] and faces
    assert sorted(remembering.faces) == windows[-1]


def test_each_face_is_scored_once_and_scores_as_the_model_does(edge_model):
    from serving.client.runtimes import EdgeModel
    from serving.service.live_window import RememberingModel
    from tests.helpers import face_crops

    model = EdgeModel(edge_model, contract.RUNTIME_TFLITE_FP16)
    scored = []

    class Recording:
        def predict(self, images):
            scored.extend(images)
            return model.predict(images)

    crops = face_crops(5)
    remembering = RememberingModel(Recording())
    first = remembering.predict(crops[:4])
    second = remembering.predict(crops[1:])
    assert scored == crops
    assert list(second.probabilities) == pytest.approx(list(model.predict(crops[1:]).probabilities), abs=1e-6)
    assert list(first.probabilities[1:]) == list(second.probabilities[:3])
    assert second.operating_point == model.point is not None


def test_the_text_output_prints_a_line_when_a_tier_changes(edge_model, video, capsys):
    command = ["live", "--local", "--model-dir", edge_model, "--runtime", contract.RUNTIME_TFLITE_INT8, video]
    assert main(command) == 0
    lines = capsys.readouterr().out.splitlines()
    assert main([*command, "--json"]) == 0
    updates = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    changes = [u for n, u in enumerate(updates) if n == 0 or _tiers(u) != _tiers(updates[n - 1])]
    assert len(lines) == len(changes) >= 1
    for line, update in zip(lines, changes, strict=True):
        assert line.split()[2] == update["verdict"] and "latency" in line


def _tiers(update: dict) -> tuple:
    return update["verdict"], [(p["track_id"], p["tier"]) for p in update["persons"]]
