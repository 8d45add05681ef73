"""The detection service with `--auth keys`, in front of the model server: every /v1/* route refuses missing
and wrong keys alike, each principal sees only its own checks and jobs, one key's burst leaves room for
another's request, and two service processes on one PostgreSQL database honour a revocation at once and
never write a key to their logs."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import pytest
import skimage.data

from deepfake_detection.ingest.readers import read_dataset
from serving.service import auth
from serving.service.analysis import DetectionService
from serving.service.settings import ServiceSettings
from tests.serving.helpers import LIMITS, finished_job, serving_on_loopback
from tests.serving.service.test_admission import service_process

ANALYSIS_ROUTES = [("POST", "/v1/detect"), ("POST", "/v1/jobs"), ("GET", "/v1/history"), ("GET", "/v1/jobs/x")]


def astronaut_jpeg() -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def call(url, method, path, key=None, headers=None, **kwargs):
    headers = headers if headers is not None else (bearer(key) if key else {})
    if method == "POST":
        kwargs.setdefault("files", {"files": ("face.jpg", astronaut_jpeg())})
    return httpx.request(method, url + path, headers=headers, timeout=120, **kwargs)


def wrong_headers(key: str) -> dict:
    """Every kind of wrong credential: none, garbage, another scheme, an unknown key id, a wrong secret."""
    key_id, secret = auth.split_key(key)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    return {
        "no key": {},
        "garbage": bearer("wrong"),
        "basic scheme": {"Authorization": f"Basic {key}"},
        "unknown id": bearer(f"dfk_{'f' * 16}_{secret}"),
        "wrong secret": bearer(f"dfk_{key_id}_{flipped}"),
    }


@pytest.fixture(scope="module")
def keyed_service(model_server, tmp_path_factory):
    """The service with keys on SQLite, one analysis at a time, and a share of one running and one waiting
    request per key; keys for alice, bob and an admin."""
    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path_factory.mktemp('keyed')}/history.sqlite",
        auth="keys",
        frames_per_video=6,
        max_in_flight=1,
        max_queued=6,
        max_in_flight_per_key=1,
        max_queued_per_key=1,
        **LIMITS,
    )
    detection = DetectionService(settings)
    keys = {name: detection.keys.create(name, admin=name == "root") for name in ("alice", "bob", "root")}
    with serving_on_loopback(detection) as url:
        yield url, detection, keys
    detection.decoder.close()


def test_every_analysis_route_answers_401_alike_to_every_wrong_key(keyed_service):
    url, _, keys = keyed_service
    for method, path in ANALYSIS_ROUTES:
        bodies = set()
        for kind, headers in wrong_headers(keys["alice"]).items():
            response = call(url, method, path, headers=headers)
            assert response.status_code == 401, (method, path, kind)
            assert response.headers["WWW-Authenticate"].startswith("Bearer "), (path, kind)
            bodies.add(response.content)
        assert len(bodies) == 1, f"{method} {path}: the answer must not tell one wrong key from another"


def test_health_readiness_and_the_page_stay_open_and_show_no_user_data(keyed_service):
    url, _, keys = keyed_service
    assert call(url, "POST", "/v1/detect", keys["alice"]).status_code == 200
    for path in ("/healthz", "/readyz", "/", "/static/app.js"):
        response = httpx.get(url + path, timeout=30)
        assert response.status_code == 200, path
        assert b"alice" not in response.content and b"face.jpg" not in response.content, path


def test_docs_need_a_key_and_metrics_an_admin_key(keyed_service):
    url, _, keys = keyed_service
    for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
        assert httpx.get(url + path, timeout=30).status_code == 401, path
        assert httpx.get(url + path, headers=bearer(keys["root"]), timeout=30).status_code == 200, path
    assert httpx.get(url + "/openapi.json", headers=bearer(keys["alice"]), timeout=30).status_code == 200
    assert httpx.get(url + "/metrics", headers=bearer(keys["alice"]), timeout=30).status_code == 403


def test_every_answer_carries_the_security_headers(keyed_service):
    url, _, keys = keyed_service
    answers = [
        httpx.get(url + "/", timeout=30),
        httpx.get(url + "/static/app.js", timeout=30),
        httpx.get(url + "/v1/history", timeout=30),  # a 401
        httpx.get(url + "/nowhere", timeout=30),  # a 404
        call(url, "POST", "/v1/detect", keys["alice"]),
    ]
    for answer in answers:
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, answer.url
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-frame-options"] == "DENY"


def test_checks_and_jobs_belong_to_their_principal(keyed_service):
    url, _, keys = keyed_service
    upload = {"files": ("alice-only.jpg", astronaut_jpeg())}
    answer = call(url, "POST", "/v1/detect", keys["alice"], files=upload)
    assert answer.status_code == 200 and answer.json()["results"][0]["verdict"] in ("fake", "uncertain", "real")

    def names(key):
        page = call(url, "GET", "/v1/history?limit=500", key)
        assert page.status_code == 200
        return {item["file_name"] for item in page.json()["items"]}

    assert "alice-only.jpg" in names(keys["alice"])
    assert "alice-only.jpg" not in names(keys["bob"])
    assert "alice-only.jpg" in names(keys["root"]), "an admin sees every principal's checks"

    created = call(url, "POST", "/v1/jobs", keys["alice"], files={"files": ("alice-job.jpg", astronaut_jpeg())})
    assert created.status_code == 202
    status_url = created.json()["status_url"]
    job = finished_job(lambda: call(url, "GET", status_url, keys["alice"]).json())
    assert job["state"] == "done" and job["results"][0]["file_name"] == "alice-job.jpg"
    hidden = call(url, "GET", status_url, keys["bob"])
    job_id = created.json()["job_id"]
    assert hidden.status_code == 404, "another principal's job is answered as a missing one"
    assert hidden.json() == {"error": {"kind": "not_found", "message": f"no job {job_id}"}}
    assert call(url, "GET", status_url, keys["root"]).json()["state"] == "done"
    assert "alice-job.jpg" not in names(keys["bob"])


def test_one_keys_burst_is_refused_429_past_its_share_and_another_key_still_gets_through(keyed_service, sample_dataset):
    url, detection, keys = keyed_service
    video = open(sorted(r.path for r in read_dataset(sample_dataset))[0], "rb").read()

    def post(key_and_delay):
        key, delay = key_and_delay
        time.sleep(delay)
        return call(url, "POST", "/v1/detect", key, files={"files": ("burst.mp4", video)})

    requests = [(keys["alice"], 0.0)] * 6 + [(keys["bob"], 0.3)]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(post, requests))
    *alice, bob = answers
    assert bob.status_code == 200, bob.text
    statuses = [a.status_code for a in alice]
    assert set(statuses) <= {200, 429} and statuses.count(429) >= 3, statuses
    for answer in alice:
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["error"]["limit"] == "max_queued_per_key"
    assert detection.admission.admitted == 0


def keys_command(history_url: str, *arguments: str) -> str:
    """`deepfake-pipeline keys ...` as the console script runs it; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline_runner", "keys", *arguments, "--history-url", history_url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_replicas_with_keys_on_postgresql_keep_principals_apart_revoke_at_once_and_log_no_key(
    model_server, postgres, tmp_path
):
    history_url = postgres("keyed_replicas")
    keys = {name: keys_command(history_url, "create", name).strip().splitlines()[-1] for name in ("alice", "bob")}
    wrong = wrong_headers(keys["alice"])
    logs = [str(tmp_path / "a.log"), str(tmp_path / "b.log")]
    flags = ["--history-url", history_url, "--auth", "keys"]
    with (
        service_process(model_server, flags, logs[0]) as first,
        service_process(model_server, flags, logs[1]) as second,
    ):
        for replica in (first, second):
            for method, path in ANALYSIS_ROUTES[:3]:
                for kind, headers in wrong.items():
                    assert call(replica, method, path, headers=headers).status_code == 401, (replica, path, kind)

        upload = {"files": ("hers.jpg", astronaut_jpeg())}
        assert call(first, "POST", "/v1/detect", keys["alice"], files=upload).status_code == 200
        created = call(first, "POST", "/v1/jobs", keys["alice"], files={"files": ("her-job.jpg", astronaut_jpeg())})
        assert created.status_code == 202
        status_url = created.json()["status_url"]
        job = finished_job(lambda: call(second, "GET", status_url, keys["alice"]).json())
        assert job["state"] == "done"
        for replica in (first, second):
            mine = call(replica, "GET", "/v1/history", keys["alice"]).json()["items"]
            theirs = call(replica, "GET", "/v1/history", keys["bob"]).json()["items"]
            assert {"hers.jpg", "her-job.jpg"} <= {item["file_name"] for item in mine}
            assert theirs == []
            assert call(replica, "GET", status_url, keys["bob"]).status_code == 404

        keys_command(history_url, "revoke", "alice")
        for replica in (first, second):
            assert call(replica, "GET", "/v1/history", keys["alice"]).status_code == 401, "revoked on every replica"
            assert call(replica, "GET", "/v1/history", keys["bob"]).status_code == 200
    for log in logs:
        text = open(log).read()
        assert "GET /v1/history" in text, "the log is the service's access log"
        for key in keys.values():
            _, secret = auth.split_key(key)
            assert secret not in text and auth.split_key(key)[0] not in text
        for headers in wrong.values():
            value = headers.get("Authorization", "")
            assert not value or value.split(" ", 1)[1] not in text


@pytest.mark.e2e
def test_the_page_asks_for_a_key_keeps_it_in_session_storage_and_never_in_a_url(keyed_service, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.serving.service.test_detection_page import CHROMIUM, CHROMIUM_ARGS

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    url, _, keys = keyed_service
    image = tmp_path / "page-upload.jpg"
    image.write_bytes(astronaut_jpeg())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)
        page.wait_for_selector("#key-section:not([hidden])", timeout=30_000)
        page.fill("#key", "dfk_wrong")
        page.click("#key-form button")
        page.locator("#key-message", has_text="refused").wait_for()
        page.fill("#key", keys["alice"])
        page.click("#key-form button")
        page.wait_for_selector("#key-section", state="hidden", timeout=30_000)
        page.set_input_files("#picker", str(image))
        page.wait_for_selector(".result .verdict", timeout=120_000)
        page.locator("#history", has_text="page-upload.jpg").wait_for()
        assert page.evaluate("sessionStorage.getItem('deepfake-api-key')") == keys["alice"]
        assert page.evaluate("localStorage.length") == 0
        browser.close()
    _, secret = auth.split_key(keys["alice"])
    assert not [u for u in requested if secret in u or "dfk_" in u], "a key must never be in a URL"


def test_one_keys_stalled_uploads_hold_its_share_of_the_body_budget_not_everyones(keyed_service):
    """Alice starts more stalled uploads than the whole budget holds: beyond her share she is refused (503),
    and bob's upload still goes through while hers stall."""
    from tests.serving import hostile

    url, detection, keys = keyed_service
    port = int(url.rsplit(":", 1)[1])
    size = LIMITS["max_body_bytes"] - 1000
    body, content_type = hostile.multipart("stalled.jpg", b"\0" * size)
    sent = body[: size * 9 // 10]
    stalled_count = detection.bodies.limit // len(sent) + 1
    assert detection.bodies.key_limit < stalled_count * len(sent)
    head = hostile.request_head(
        port, "/v1/detect", content_type, len(body), headers=f"Authorization: Bearer {keys['alice']}\r\n"
    )
    socks = []
    try:
        for _ in range(stalled_count):
            sock = hostile.connect(port)
            sock.sendall(head + sent)
            socks.append(sock)
            time.sleep(0.2)
        large = astronaut_jpeg() + b"\0" * (size - len(astronaut_jpeg()))  # a valid JPEG, padded after its end
        answer = call(url, "POST", "/v1/detect", keys["bob"], files={"files": ("large.jpg", large)})
        assert answer.status_code == 200, answer.text
        refused = [hostile.read_until_closed(sock, 0.5)[0] for sock in socks]
        assert sum(hostile.status_of(r) == 503 for r in refused) >= stalled_count - 2, [r[:40] for r in refused]
    finally:
        for sock in socks:
            sock.close()


def job_of(url, key, files):
    created = call(url, "POST", "/v1/jobs", key, files=files)
    assert created.status_code == 202, created.text
    return created.json()["status_url"]


def wait_for_state(url, key, status_url, states, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    job = call(url, "GET", status_url, key).json()
    while job["state"] not in states:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = call(url, "GET", status_url, key).json()
    return job


def test_revoking_a_key_cancels_its_running_and_queued_jobs(keyed_service, sample_dataset):
    url, detection, keys = keyed_service
    video = open(sorted(r.path for r in read_dataset(sample_dataset))[0], "rb").read()
    carol = detection.keys.create("carol")
    principal_id = detection.keys.verify(carol).principal_id
    files = [("files", (f"carol{i}.mp4", video)) for i in range(8)]
    running = job_of(url, carol, files)
    queued = job_of(url, carol, files)
    wait_for_state(url, keys["root"], running, ("running",))
    detection.keys.revoke("carol")
    for status_url in (running, queued):
        job = wait_for_state(url, keys["root"], status_url, ("cancelled", "done", "failed"))
        assert job["state"] == "cancelled", job
    recorded = [i for i in detection.history.page(500, 0, principal_id)[0]]
    assert len(recorded) < 8, "the revoked key's work ran to the end"
    assert detection.admission.admitted == 0


def test_an_owner_cancels_its_own_job_and_nobody_elses(keyed_service, sample_dataset):
    url, detection, keys = keyed_service
    video = open(sorted(r.path for r in read_dataset(sample_dataset))[0], "rb").read()
    status_url = job_of(url, keys["alice"], [("files", (f"mine{i}.mp4", video)) for i in range(8)])
    wait_for_state(url, keys["alice"], status_url, ("running",))
    assert call(url, "DELETE", status_url, keys["bob"]).status_code == 404
    cancelling = call(url, "DELETE", status_url, keys["alice"])
    assert cancelling.status_code == 202 and cancelling.json()["state"] == "cancelling"
    job = wait_for_state(url, keys["alice"], status_url, ("cancelled", "done", "failed"))
    assert job["state"] == "cancelled" and job["file_index"] < 7
    assert call(url, "DELETE", status_url, keys["alice"]).status_code == 409
    assert call(url, "DELETE", "/v1/jobs/unknown", keys["alice"]).status_code == 404
    assert detection.admission.admitted == 0


def test_metrics_on_their_own_port_need_no_key_and_leave_the_service_port(model_server, tmp_path):
    from tests.helpers import free_port

    metrics_port = free_port()
    history = ["--history-url", f"sqlite:///{tmp_path}/history.sqlite", "--auth", "keys"]
    history += ["--metrics-port", str(metrics_port)]
    store = auth.KeyStore.open(f"sqlite:///{tmp_path}/history.sqlite")
    root = store.create("root", admin=True)
    store.close()
    with service_process(model_server, history, str(tmp_path / "log")) as url:
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30)
        assert scraped.status_code == 200 and "detection_requests" in scraped.text
        assert httpx.get(f"{url}/metrics", headers=bearer(root), timeout=30).status_code == 404
