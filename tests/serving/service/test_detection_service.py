"""The detection service through a real HTTP server on loopback, in front of the model server over gRPC.

Verdicts for real and fake sample videos and images, a no-face video, each
limit and broken-file kind with its 4xx code, a decoder crash and a decoder
hang that leave the service up, concurrent requests, jobs with progress,
history, readiness and metrics, and the command line.
"""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest
import skimage.data

from deepfake_detection.evaluation.operating_point import OperatingPoint
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.models import export
from serving.client.local_model import InProcessModel
from serving.client.tf_serving import GrpcClient, ModelTarget
from serving.service.analysis import DetectionService
from serving.service.detection_service import create_app
from serving.service.settings import ServiceSettings
from serving.service.video_analysis import VideoAnalyzer
from tests.helpers import make_broken_files, write_numbered_video
from tests.serving.decoders import CRASH_MARKER, HANG_MARKER
from tests.serving.helpers import LIMITS, finished_job

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def post_files(url, files, path="/v1/detect"):
    """POSTs (name, bytes) pairs as multipart `files`; returns (status, JSON answer)."""
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    response = httpx.post(url + path, files=parts, timeout=120)
    return response.status_code, response.json()


def get(url):
    response = httpx.get(url, timeout=30)
    return response.status_code, response.content


def read(path):
    with open(path, "rb") as f:
        return f.read()


def astronaut(extension):
    ok, data = cv2.imencode(extension, cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def reference(model_server):
    """The same analysis in this process, on the same model: what every verdict must equal."""
    settings = ServiceSettings(frames_per_video=6, **LIMITS)
    detector = FaceDetector.from_config(settings.ingest_config())
    return VideoAnalyzer(InProcessModel(model_server.exported[1]), settings.ingest_config(), detector=detector)


def test_verdicts_for_real_and_fake_videos_match_the_in_process_analysis(service, sample_dataset, reference):
    url, _ = service
    records = read_dataset(sample_dataset)
    assert {r.label for r in records} == {0, 1}
    for record in records:
        status, answer = post_files(url, [(os.path.basename(record.path), read(record.path))])
        assert status == 200, answer
        [result] = answer["results"]
        expected = reference.analyse_video(record.path)
        assert result["verdict"] == expected.verdict and result["verdict"] in ("fake", "uncertain", "real")
        assert result["fake_probability"] == pytest.approx(expected.fake_probability, abs=1e-5)
        assert result["model_name"] == "faces" and result["model_version"] == 1
        assert result["frames_analysed"] == 6 and result["faces"]
        face = result["faces"][0]
        assert {"frame_index", "timestamp", "track_id", "box", "fake_probability"} <= set(face)
        assert set(result["timings_s"]) == {"decode", "detection", "model", "total"}


@pytest.mark.parametrize("extension", [".jpg", ".png", ".webp"])
def test_image_verdicts(service, extension):
    url, _ = service
    status, answer = post_files(url, [(f"astronaut{extension}", astronaut(extension))])
    assert status == 200, answer
    [result] = answer["results"]
    assert result["verdict"] in ("fake", "uncertain", "real") and len(result["faces"]) == 1
    assert result["media_type"] == f"image/{ {'.jpg': 'jpeg', '.png': 'png', '.webp': 'webp'}[extension] }"


def test_video_without_a_face_is_no_face(service, tmp_path):
    url, _ = service
    write_numbered_video(str(tmp_path / "grey.mp4"), frames=10)
    status, answer = post_files(url, [("grey.mp4", read(tmp_path / "grey.mp4"))])
    assert status == 200
    [result] = answer["results"]
    assert result["verdict"] == "no_face" and result["fake_probability"] is None and result["faces"] == []


@pytest.fixture(scope="module")
def broken(tmp_path_factory, sample_dataset):
    folder = tmp_path_factory.mktemp("broken")
    good = sorted(r.path for r in read_dataset(sample_dataset))[0]
    make_broken_files(str(folder), good)
    return folder


@pytest.mark.parametrize(
    "name, status, kind, limit",
    [
        ("empty.mp4", 422, "empty", None),
        ("not_a_video.mp4", 415, "media_type", None),
        ("audio_only.wav", 415, "media_type", None),
        ("truncated.mp4", 422, "undecodable", None),
        ("truncated.avi", 422, "undecodable", None),
        ("unknown_codec.avi", 422, "undecodable", None),
        ("too_long.mp4", 422, "limit", "max_duration_s"),
        ("too_large.mp4", 422, "limit", "max_pixels"),
    ],
)
def test_each_broken_kind_and_limit_gets_its_4xx(service, broken, name, status, kind, limit):
    url, _ = service
    code, answer = post_files(url, [(name, read(broken / name))])
    assert code == status, answer
    [result] = answer["results"]
    assert result["error"]["kind"] == kind and result["error"].get("limit") == limit
    assert result["error"]["message"]


def test_body_over_the_limit_is_413_naming_it(service):
    url, _ = service
    status, answer = post_files(url, [("big.mp4", b"\x00" * (LIMITS["max_body_bytes"] + 1))])
    assert status == 413 and answer["error"]["limit"] == "max_body_bytes"


def test_not_multipart_is_400(service):
    url, _ = service
    response = httpx.post(url + "/v1/detect", content=b"{}", headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400 and "multipart" in response.json()["error"]["message"]


def test_decoder_crash_and_hang_cost_one_file_and_the_service_stays_up(service):
    url, _ = service
    crash = astronaut(".png") + CRASH_MARKER
    hang = astronaut(".png") + HANG_MARKER
    status, answer = post_files(url, [("crash.png", crash), ("hang.png", hang), ("fine.jpg", astronaut(".jpg"))])
    assert status == 207
    crashed, hung, fine = answer["results"]
    assert crashed["status"] == 422 and crashed["error"]["kind"] == "decoder_crash"
    assert hung["status"] == 422 and hung["error"]["kind"] == "decode_timeout"
    assert hung["error"]["limit"] == "decode_timeout_s"
    assert fine["status"] == 200 and fine["verdict"] in ("fake", "uncertain", "real")
    assert get(url + "/healthz")[0] == 200


def test_the_decode_child_holds_no_tensorflow_tfx_or_beam():
    from deepfake_detection.ingest.ingest_config import IngestConfig
    from serving.service.media import KIND_IMAGE, IsolatedDecoder
    from tests.serving.decoders import loaded_modules, module_names

    decoder = IsolatedDecoder(30, decoder=loaded_modules)
    try:
        modules = module_names(decoder.decode(astronaut(".png"), KIND_IMAGE, "png", IngestConfig()))
    finally:
        decoder.close()
    assert "cv2" in modules and "deepfake_detection.ingest.sampling" in modules
    heavy = [m for m in modules if m.split(".")[0] in ("tensorflow", "tfx", "apache_beam", "keras")]
    assert not heavy, heavy[:5]


def test_decoded_frames_are_mapped_from_the_decode_childs_answer_not_copied(sample_dataset):
    import numpy as np

    from deepfake_detection.ingest.ingest_config import IngestConfig
    from serving.service.media import KIND_VIDEO, IsolatedDecoder, decode_media

    record = read_dataset(sample_dataset)[0]
    ingest_config = IngestConfig(frames_per_video=6)
    decoder = IsolatedDecoder(30)
    try:
        result = decoder.decode(read(record.path), KIND_VIDEO, "mp4", ingest_config)
    finally:
        decoder.close()
    reference = decode_media(record.path, KIND_VIDEO, ingest_config)
    assert [(f.index, f.timestamp) for f in result.frames] == [(f.index, f.timestamp) for f in reference.frames]
    for frame, expected in zip(result.frames, reference.frames, strict=True):
        assert isinstance(frame.image, np.memmap) and not frame.image.flags.writeable
        assert np.array_equal(frame.image, expected.image)


def test_several_files_each_answered_and_concurrent_requests(service):
    url, _ = service
    images = [(f"face{i}{ext}", astronaut(ext)) for i, ext in enumerate([".jpg", ".png", ".webp"])]
    status, answer = post_files(url, images)
    assert status == 200 and [r["file_name"] for r in answer["results"]] == ["face0.jpg", "face1.png", "face2.webp"]
    expected = answer["results"][0]["fake_probability"]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: post_files(url, [images[0]]), range(12)))
    assert all(code == 200 for code, _ in answers)
    assert all(a["results"][0]["fake_probability"] == pytest.approx(expected, abs=1e-6) for _, a in answers)


def test_job_reports_progress_then_the_answers(service, sample_dataset):
    url, _ = service
    record = read_dataset(sample_dataset)[0]
    status, created = post_files(url, [(os.path.basename(record.path), read(record.path))], "/v1/jobs")
    assert status == 202
    job = finished_job(lambda: json.loads(get(url + created["status_url"])[1]), poll_s=0.05)
    assert job["state"] == "done" and job["progress"] == 1.0
    assert job["results"][0]["faces"][0]["thumbnail_jpeg_b64"]
    assert get(url + "/v1/jobs/unknown")[0] == 404


def test_face_thumbnails_never_reach_the_database(service, sample_dataset):
    """The replica that ran a job shows its thumbnails from memory; the shared database holds none, so another
    replica answers the job without them."""
    import sqlalchemy as sa

    from serving.service.history import JOBS

    url, detection = service
    record = read_dataset(sample_dataset)[0]
    status, created = post_files(url, [("thumbs.mp4", read(record.path))], "/v1/jobs?thumbnails=true")
    job = finished_job(lambda: json.loads(get(url + created["status_url"])[1]), poll_s=0.05)
    assert job["state"] == "done" and job["results"][0]["faces"][0]["thumbnail_jpeg_b64"]
    with detection.history.engine.connect() as connection:
        documents = connection.execute(sa.select(JOBS.c.document)).scalars().all()
    assert documents and not any("thumbnail_jpeg_b64" in document for document in documents)
    stored = detection.history.job(created["job_id"])
    assert stored["results"][0]["faces"] and "thumbnail_jpeg_b64" not in stored["results"][0]["faces"][0]


def test_jobs_expire_on_a_timer_without_a_new_job(model_server, tmp_path, sample_dataset):
    from serving.service.media import IsolatedDecoder
    from tests.serving.helpers import serving_on_loopback

    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path}/history.sqlite",
        jobs_kept_s=1.0,
        **LIMITS,
    )
    detection = DetectionService(settings, decoder=IsolatedDecoder(10))
    try:
        with serving_on_loopback(detection) as url:
            status, created = post_files(url, [("expiring.jpg", astronaut(".jpg"))], "/v1/jobs")
            job = finished_job(lambda: json.loads(get(url + created["status_url"])[1]), poll_s=0.05)
            assert job["state"] == "done"
            deadline = time.monotonic() + 10
            while get(url + created["status_url"])[0] == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert get(url + created["status_url"])[0] == 404, "the job outlived jobs_kept_s with no new job"
    finally:
        detection.decoder.close()


def test_a_job_created_on_one_replica_is_answered_by_another_on_the_same_database(service, sample_dataset):
    from starlette.testclient import TestClient

    from serving.service.media import IsolatedDecoder

    url, detection = service
    record = read_dataset(sample_dataset)[0]
    status, created = post_files(url, [("replica.mp4", read(record.path))], "/v1/jobs")
    assert status == 202
    other = DetectionService(detection.settings, model=detection.client, decoder=IsolatedDecoder(5))
    with TestClient(create_app(other), base_url="http://localhost") as replica:
        job = finished_job(lambda: replica.get(created["status_url"]).json())
        assert replica.get("/v1/jobs/unknown").status_code == 404
    assert job["state"] == "done" and job["results"][0]["file_name"] == "replica.mp4"


def test_history_pages_checks_without_media(service):
    url, _ = service
    post_files(url, [("history.jpg", astronaut(".jpg"))])
    code, body = get(url + "/v1/history?limit=2&offset=0")
    page = json.loads(body)
    assert code == 200 and len(page["items"]) == 2 and page["total"] >= 2
    newest = page["items"][0]
    assert newest["file_name"] == "history.jpg" and newest["media_type"] == "image/jpeg"
    assert (
        len(newest["sha256"]) == 64
        and newest["verdict"] in ("fake", "uncertain", "real")
        and newest["model_version"] == 1
    )
    assert set(newest) == {
        "check_id", "checked_at", "file_name", "media_type", "size_bytes", "sha256", "verdict",
        "fake_probability", "model_name", "model_version", "error", "principal", "feedback",
    }  # fmt: skip
    second = json.loads(get(url + "/v1/history?limit=2&offset=1")[1])["items"][0]
    assert second["check_id"] == page["items"][1]["check_id"]
    assert get(url + "/v1/history?limit=0")[0] == 400


def test_readiness_and_metrics(service):
    url, _ = service
    assert get(url + "/readyz")[0] == 200
    code, body = get(url + "/metrics")
    text = body.decode()
    assert code == 200
    assert 'detection_verdicts_total{verdict="no_face"}' in text
    assert 'detection_errors_total{kind="decoder_crash"}' in text
    assert 'detection_requests_total{route="/v1/detect",status="200"}' in text


def test_readiness_fails_when_the_model_is_missing(model_server, tmp_path):
    missing = DetectionService(
        ServiceSettings(history_url=f"sqlite:///{tmp_path}/h.sqlite"),
        model=GrpcClient(model_server.grpc_address, ModelTarget("missing")),
    )
    from fastapi.testclient import TestClient

    assert TestClient(create_app(missing), base_url="http://localhost").get("/readyz").status_code == 503


def test_command_line_against_the_service_and_fully_local(service, model_server, sample_dataset, broken):
    url, _ = service
    video = sorted(r.path for r in read_dataset(sample_dataset))[0]
    command = [sys.executable, "-m", "pipeline_runner", "detect", "--service", url]
    good = subprocess.run([*command, video, "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert good.returncode == 0, good.stderr
    [remote] = json.loads(good.stdout)
    mixed = subprocess.run(
        [*command, video, str(broken / "not_a_video.mp4")], capture_output=True, text=True, timeout=300
    )
    assert mixed.returncode == 1 and "unsupported media type" in mixed.stdout and "%" in mixed.stderr
    local = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline_runner",
            "detect",
            "--local",
            "--model-dir",
            model_server.exported[1],
            "--frames-per-video",
            "6",
            video,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert local.returncode == 0, local.stderr[-2000:]
    [offline] = json.loads(local.stdout)
    assert offline["verdict"] == remote["verdict"]
    assert offline["fake_probability"] == pytest.approx(remote["fake_probability"], abs=1e-5)
    for key in ("threshold", "real_threshold"):
        assert offline[key] == pytest.approx(remote[key], abs=1e-6) and remote[key] is not None
    assert offline["operating_point_source"] == remote["operating_point_source"] == "model"
    assert offline["explanation"] == remote["explanation"]


def test_tiers_and_the_served_operating_point(service, model_server, sample_dataset):
    """Every verdict is read at the operating point the served version carries, and says why."""
    url, _ = service
    served = httpx.get(f"{url}/v1/model", timeout=60).json()
    point = served["operating_point"]
    assert served["model_version"] == 1 and point["fake_threshold"] > point["real_threshold"]
    fitted = export.read_operating_point(model_server.exported[1])
    assert point["fake_threshold"] == pytest.approx(fitted["fake_threshold"], abs=1e-6)
    video = sorted(r.path for r in read_dataset(sample_dataset))[0]
    with open(video, "rb") as f:
        [result] = httpx.post(f"{url}/v1/detect", files={"files": ("v.mp4", f.read())}, timeout=300).json()["results"]
    expected = OperatingPoint.from_dict(point)
    assert result["verdict"] == expected.verdict(result["fake_probability"])
    assert result["fake_probability"] == pytest.approx(expected.calibrate(result["raw_score"]), abs=1e-6)
    assert result["explanation"] and result["other_tracks"] == []
    assert httpx.get(f"{url}/v1/model/card", timeout=60).status_code == 404  # no --model-base-path here


_COUNT_NEW_ARENAS = """
import ctypes, re, sys, threading
from serving.service.detection_service import limit_malloc_arenas

libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p


def heaps(path):
    stream = ctypes.c_void_p(libc.fopen(path.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    return len(re.findall("<heap nr=", open(path).read()))


before = heaps(sys.argv[2])
if sys.argv[1] == "limit":
    limit_malloc_arenas(1)
barrier = threading.Barrier(9)
threads = [threading.Thread(target=lambda: (bytearray(65536), barrier.wait())) for _ in range(8)]
for thread in threads:
    thread.start()
barrier.wait()
for thread in threads:
    thread.join()
print(heaps(sys.argv[2]) - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas")
@pytest.mark.parametrize("mode, expect_new", [("default", True), ("limit", False)])
def test_the_service_caps_malloc_arenas_for_its_threads(tmp_path, mode, expect_new):
    run = subprocess.run(
        [sys.executable, "-c", _COUNT_NEW_ARENAS, mode, str(tmp_path / "malloc_info.xml")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    new_arenas = int(run.stdout.split()[-1])
    assert (new_arenas >= 4) if expect_new else (new_arenas == 0), run.stdout


def _faces_explained(answer):
    """Checks every face of an explained answer: a crop box inside the frame and a map in [0, 1]; returns them."""
    faces = answer["faces"]
    assert faces
    for face in faces:
        x, y, width, height = face["crop_box"]
        assert 0 <= x and 0 <= y and x + width <= answer["width"] and y + height <= answer["height"]
        fx, fy, fw, fh = face["box"]  # the margin box holds the detection's box
        assert x <= fx and y <= fy and fx + fw <= x + width and fy + fh <= y + height
        cells = [value for row in face["heatmap"] for value in row]
        assert len(face["heatmap"]) == len(face["heatmap"][0]) > 1
        assert 0 <= min(cells) < max(cells) <= 1, "a map in [0, 1] with a place that stands out"
    return faces


def test_maps_of_each_face_only_when_asked_on_detect_jobs_and_the_command_line(
    service, model_server, sample_dataset, capsys
):
    import pipeline_runner as cli

    url, _ = service
    path = sorted(r.path for r in read_dataset(sample_dataset))[0]
    files = [(os.path.basename(path), read(path))]
    status, plain = post_files(url, files)
    assert status == 200 and not {"crop_box", "heatmap"} & set(plain["results"][0]["faces"][0])
    status, explained = post_files(url, files, "/v1/detect?explain=true")
    assert status == 200
    faces = _faces_explained(explained["results"][0])
    assert [f["fake_probability"] for f in faces] == pytest.approx(
        [f["fake_probability"] for f in plain["results"][0]["faces"]], abs=1e-6
    )
    assert explained["results"][0]["verdict"] == plain["results"][0]["verdict"]
    status, created = post_files(url, files, "/v1/jobs?explain=true")
    assert status == 202
    job = finished_job(lambda: json.loads(get(url + created["status_url"])[1]), poll_s=0.05)
    assert [f["heatmap"] for f in _faces_explained(job["results"][0])] == [f["heatmap"] for f in faces]

    assert cli.main(["detect", "--service", url, "--explain", "--json", path]) == 0
    [remote] = json.loads(capsys.readouterr().out)
    assert [f["crop_box"] for f in _faces_explained(remote)] == [f["crop_box"] for f in faces]
    assert cli.main(["detect", "--service", url, "--explain", path]) == 0
    assert "most manipulated: frame" in capsys.readouterr().out
    assert cli.main(["detect", "--service", url, "--json", path]) == 0
    assert "heatmap" not in capsys.readouterr().out
    local = ["detect", "--local", "--model-dir", model_server.exported[1], "--frames-per-video", "6", "--json", path]
    assert cli.main([*local, "--explain"]) == 0
    [offline] = json.loads(capsys.readouterr().out)
    for here, there in zip(_faces_explained(offline), faces, strict=True):
        assert here["crop_box"] == there["crop_box"]
        np.testing.assert_allclose(here["heatmap"], there["heatmap"], atol=2e-3)


def test_a_database_failure_answers_the_verdict_unrecorded_and_without_sql(model_server, tmp_path):
    import sqlalchemy as sa

    from serving.service.media import IsolatedDecoder
    from tests.serving.helpers import serving_on_loopback

    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path}/history.sqlite",
        **LIMITS,
    )
    detection = DetectionService(settings, decoder=IsolatedDecoder(10))
    with detection.history.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE checks"))
    try:
        with serving_on_loopback(detection) as url:
            status, created = post_files(url, [("secret-name.jpg", astronaut(".jpg"))], "/v1/jobs")
            job = finished_job(lambda: json.loads(get(url + created["status_url"])[1]), poll_s=0.05)
            answer = httpx.post(f"{url}/v1/detect", files={"files": ("secret-name.jpg", astronaut(".jpg"))})
    finally:
        detection.decoder.close()
    # The verdicts are answered, marked unrecorded (spooled until the history takes them), and nothing the user
    # reads carries the database's words.
    assert job["state"] == "done" and job["results"][0]["recorded"] is False
    assert answer.status_code == 200 and answer.json()["results"][0]["recorded"] is False
    for text in (json.dumps(job), answer.text):
        assert not any(word in text.upper() for word in ("INSERT", "SQL", "NO SUCH TABLE")), text
