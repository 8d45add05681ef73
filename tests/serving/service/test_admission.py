"""Admission control: the counting alone, then a burst of real uploads against a service with small limits,
and the same burst against two service processes sharing one PostgreSQL database."""

import contextlib
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from deepfake_detection.ingest.readers import read_dataset
from serving.service.admission import KEY_QUEUE_FULL, QUEUE_FULL, Admission
from serving.service.analysis import DetectionService
from serving.service.settings import ServiceSettings
from tests.helpers import free_port
from tests.serving.helpers import SMALL_SERVICE, finished_job, serving_on_loopback


def test_requests_beyond_slots_and_queue_are_refused_and_counted():
    admission = Admission(max_in_flight=1, max_queued=1)
    first, second = admission.admit(), admission.admit()
    assert first and second
    assert admission.admit() is None and admission.rejected == 1
    first.give_back()
    first.give_back()
    assert admission.admitted == 1, "a place is given back once, however often its holder says so"
    third = admission.admit()
    assert admission.run(third, lambda: (admission.in_flight, admission.queued)) == (1, 1)
    assert (admission.admitted, admission.in_flight) == (1, 0)


def test_a_place_comes_back_whatever_ends_the_work():
    admission = Admission(max_in_flight=1, max_queued=0)
    for failure in (RuntimeError("analysis failed"), KeyboardInterrupt()):
        place = admission.admit()
        with pytest.raises(type(failure)):
            admission.run(place, lambda failure=failure: (_ for _ in ()).throw(failure))
        assert (admission.admitted, admission.in_flight) == (0, 0)


def test_full_for_counts_only_an_unbroken_full_stretch():
    admission = Admission(max_in_flight=1, max_queued=1)
    first = admission.admit()
    assert admission.full_for_s() == 0.0
    admission.admit()
    time.sleep(0.05)
    assert admission.full_for_s() >= 0.05
    first.give_back()
    assert admission.full_for_s() == 0.0


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

    places = [admission.admit() for _ in range(8)]
    assert all(places)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda place: admission.run(place, work), places))
    assert peak[0] == 2 and admission.admitted == 0


def test_retry_after_grows_with_the_work_admitted_ahead():
    admission = Admission(max_in_flight=1, max_queued=3, initial_duration_s=2.0)
    admission.admit()
    alone = admission.retry_after_s()
    for _ in range(3):
        admission.admit()
    assert 1 <= alone < admission.retry_after_s() <= 120


def test_a_key_past_its_share_is_refused_while_others_are_admitted():
    admission = Admission(max_in_flight=2, max_queued=6, max_in_flight_per_key=1, max_queued_per_key=2)
    alices = [admission.try_admit("alice") for _ in range(4)]
    assert [refusal for _, refusal in alices] == [None, None, None, KEY_QUEUE_FULL]
    assert alices[0][0].key == "alice" and alices[3][0] is None
    assert admission.try_admit("bob")[1] is None and admission.rejected == 1
    assert admission.retry_after_s("alice") >= 1
    alices[0][0].give_back()
    assert admission.try_admit("alice")[1] is None
    assert [admission.try_admit(f"user{i}")[1] for i in range(5)] == [None, None, None, None, QUEUE_FULL]


def test_a_freed_slot_goes_to_the_key_running_least_not_to_the_bursting_key():
    """alice holds the only slot with three more waiting; bob's later request runs before alice's next."""
    admission = Admission(max_in_flight=1, max_queued=6, max_in_flight_per_key=1, max_queued_per_key=3)
    order, release, lock = [], threading.Event(), threading.Lock()

    def work(name):
        def run():
            with lock:
                order.append(name)
            release.wait(10)

        return run

    requests = [("alice", f"alice{i}") for i in range(4)] + [("bob", "bob0")]
    places = [admission.try_admit(key)[0] for key, _ in requests]
    assert all(places)
    threads = []
    for place, (_, name) in zip(places, requests, strict=True):
        threads.append(threading.Thread(target=admission.run, args=(place, work(name))))
        threads[-1].start()
        time.sleep(0.05)  # arrival order: alice's four, then bob's
    release.set()
    for thread in threads:
        thread.join(10)
    assert order[0] == "alice0" and order[1] == "bob0", order
    assert admission.admitted == 0 and admission.in_flight == 0


def test_a_key_runs_at_most_its_share_of_slots_at_once():
    admission = Admission(max_in_flight=3, max_queued=6, max_in_flight_per_key=1, max_queued_per_key=5)
    running, peak, lock = Counter(), Counter(), threading.Lock()

    def work(key):
        with lock:
            running[key] += 1
            peak[key] = max(peak[key], running[key])
        time.sleep(0.05)
        with lock:
            running[key] -= 1

    keys = ["alice"] * 5 + ["bob"] * 2
    places = [admission.try_admit(key)[0] for key in keys]
    assert all(places)
    with ThreadPoolExecutor(len(keys)) as pool:
        list(pool.map(lambda place: admission.run(place, lambda: work(place.key)), places))
    assert peak == {"alice": 1, "bob": 1} and admission.admitted == 0


@pytest.fixture(scope="module")
def small_service(model_server, tmp_path_factory):
    """The service with one analysis at a time and one waiting: a capacity of 2."""
    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path_factory.mktemp('busy')}/history.sqlite",
        **SMALL_SERVICE,
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


@contextlib.contextmanager
def service_process(model_server, history: list, log_path: str):
    """`deepfake-pipeline service` with the test limits and `history` flags on a free port, until it
    is ready; its URL."""
    port = free_port()
    command = [sys.executable, "-m", "pipeline_runner", "service", "--port", str(port)]
    command += ["--model-server", model_server.grpc_address, "--model-name", "faces", *history]
    command += [f"--{name.replace('_', '-')}={value}" for name, value in SMALL_SERVICE.items()]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            time.sleep(0.3)
        assert process.poll() is None, open(log_path).read()[-3000:]
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.postgres
def test_two_service_processes_on_one_postgresql_share_jobs_and_history(
    model_server, postgres, sample_dataset, tmp_path
):
    history_url = postgres("two_replicas")
    url_file = tmp_path / "history-url"
    url_file.write_text(history_url + "\n")
    videos = [open(r.path, "rb").read() for r in read_dataset(sample_dataset)]
    with (
        service_process(model_server, ["--history-url", history_url], str(tmp_path / "a.log")) as first,
        service_process(model_server, ["--history-url-file", str(url_file)], str(tmp_path / "b.log")) as second,
    ):
        replicas = [first, second]
        uploads = [(replicas[i % 2], f"replica{i}.mp4", videos[i % len(videos)]) for i in range(8)]
        with ThreadPoolExecutor(len(uploads)) as pool:
            answers = list(
                pool.map(lambda u: httpx.post(f"{u[0]}/v1/detect", files={"files": u[1:]}, timeout=120), uploads)
            )
        assert {a.status_code for a in answers} <= {200, 503} and 200 in {a.status_code for a in answers}
        analysed = {a.json()["results"][0]["file_name"] for a in answers if a.status_code == 200}
        for replica in replicas:
            items = httpx.get(f"{replica}/v1/history?limit=100", timeout=30).json()["items"]
            assert analysed <= {item["file_name"] for item in items}, "each replica reads the other's checks"
        created = httpx.post(f"{first}/v1/jobs", files={"files": ("shared.mp4", videos[0])}, timeout=60)
        assert created.status_code == 202
        job = finished_job(lambda: httpx.get(second + created.json()["status_url"], timeout=30).json())
        assert job["state"] == "done" and job["results"][0]["file_name"] == "shared.mp4"
