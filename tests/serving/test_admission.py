"""Admission control: the counting alone, then a burst of real uploads against a service with small limits."""

import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from deepfake_detection.ingest.readers import read_dataset
from serving.admission import Admission
from serving.detection_service import DetectionService, ServiceSettings
from tests.serving.conftest import LIMITS, serving_on_loopback


def test_requests_beyond_slots_and_queue_are_refused_and_counted():
    admission = Admission(max_in_flight=1, max_queued=1)
    assert admission.admit() and admission.admit()
    assert not admission.admit() and admission.rejected == 1
    admission.leave()
    assert admission.admit()
    assert admission.run(lambda: (admission.in_flight, admission.queued)) == (1, 1)
    assert (admission.admitted, admission.in_flight) == (1, 0)


def test_admitted_requests_run_at_most_max_in_flight_at_once():
    admission = Admission(max_in_flight=2, max_queued=6)
    running, peak, lock = [0], [0], threading.Lock()

    def work():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    assert all(admission.admit() for _ in range(8))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: admission.run(work), range(8)))
    assert peak[0] == 2 and admission.admitted == 0


def test_retry_after_grows_with_the_work_admitted_ahead():
    admission = Admission(max_in_flight=1, max_queued=3, initial_duration_s=2.0)
    admission.admit()
    alone = admission.retry_after_s()
    for _ in range(3):
        admission.admit()
    assert 1 <= alone < admission.retry_after_s() <= 120


@pytest.fixture(scope="module")
def small_service(model_server, tmp_path_factory):
    """The service with one analysis at a time and one waiting: a capacity of 2."""
    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path_factory.mktemp('busy')}/history.sqlite",
        frames_per_video=6,
        max_in_flight=1,
        max_queued=1,
        **LIMITS,
    )
    detection = DetectionService(settings)
    with serving_on_loopback(detection) as url:
        yield url, detection
    detection.decoder.close()


def test_a_burst_of_four_times_the_capacity_is_answered_200_or_503_and_nothing_is_lost(small_service, sample_dataset):
    url, detection = small_service
    videos = [open(r.path, "rb").read() for r in read_dataset(sample_dataset)]
    uploads = [(f"burst{i}.mp4", videos[i % len(videos)]) for i in range(8)]
    peak_before_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    in_flight_seen = []

    def post(upload):
        name, data = upload
        in_flight_seen.append(detection.admission.in_flight)
        return httpx.post(f"{url}/v1/detect", files={"files": (name, data)}, timeout=120)

    with ThreadPoolExecutor(len(uploads)) as pool:
        answers = list(pool.map(post, uploads))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["error"]["kind"] == "busy" and answer.json()["error"]["limit"] == "max_queued"
    analysed = {a.json()["results"][0]["file_name"] for a in answers if a.status_code == 200}
    recorded = {item["file_name"] for item in httpx.get(f"{url}/v1/history?limit=100", timeout=30).json()["items"]}
    assert analysed <= recorded, "every answered upload is in the history"
    assert max(in_flight_seen) <= 1
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert "detection_rejected" in metrics and "detection_queue_depth" in metrics
    growth_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - peak_before_mib
    assert growth_mib < 500, f"peak memory grew by {growth_mib:.0f} MiB during the burst"
