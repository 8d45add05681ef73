"""The detection service under hostile clients, on real sockets against uvicorn on loopback: uploads
abandoned half way, bodies dripped or stalled, clients that leave while queued, paths invented by the
thousand, image headers that declare a bomb, and query values past any database's range.

The service has one analysis slot and one queue place (capacity 2), so that a
single leaked place shows, and timeouts of a second or a few, so that slow
clients are dropped within the test's time.
"""

import datetime
import socket
import threading
import time
import uuid

import cv2
import httpx
import pytest
import skimage.data

from serving.service.analysis import DetectionService
from serving.service.media import public_message
from serving.service.settings import ServiceSettings
from tests.serving import hostile
from tests.serving.helpers import SMALL_SERVICE, serving_on_loopback

HEAD_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 3.0
UNREADY_AFTER_S = 0.5


def astronaut_jpeg():
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def hostile_service(model_server, tmp_path_factory):
    settings = ServiceSettings(
        model_server=model_server.grpc_address,
        model_name="faces",
        history_url=f"sqlite:///{tmp_path_factory.mktemp('hostile')}/history.sqlite",
        head_timeout_s=HEAD_TIMEOUT_S,
        read_timeout_s=READ_TIMEOUT_S,
        body_timeout_s=BODY_TIMEOUT_S,
        unready_after_s=UNREADY_AFTER_S,
        **SMALL_SERVICE,
    )
    detection = DetectionService(settings)
    with serving_on_loopback(detection) as url:
        yield url, int(url.rsplit(":", 1)[1]), detection
    detection.decoder.close()


def wait_for(condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def upload(url, name, data, path="/v1/detect"):
    return httpx.post(url + path, files={"files": (name, data)}, timeout=120)


def history_names(url):
    items = httpx.get(f"{url}/v1/history?limit=500", timeout=30).json()["items"]
    return {item["file_name"] for item in items}


def error_count(url, kind):
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f'detection_errors_total{{kind="{kind}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_uploads_abandoned_half_way_take_no_place(hostile_service):
    url, port, detection = hostile_service
    body, content_type = hostile.multipart("abandoned.jpg", astronaut_jpeg())
    gone_before = error_count(url, "client_gone")
    for _ in range(3 * detection.admission.capacity):
        with hostile.connect(port) as sock:
            sock.sendall(hostile.request_head(port, "/v1/detect", content_type, len(body)) + body[: len(body) // 2])
    wait_for(lambda: error_count(url, "client_gone") >= gone_before + 3 * detection.admission.capacity)
    assert detection.admission.admitted == 0 and detection.bodies.held == 0
    answer = upload(url, "after_abandoned.jpg", astronaut_jpeg())
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["verdict"] in ("fake", "uncertain", "real")


def test_dripping_and_stalled_uploads_get_408_and_a_valid_client_is_served(hostile_service):
    url, port, detection = hostile_service
    body, content_type = hostile.multipart("drip.jpg", astronaut_jpeg())
    drippers = [hostile.Dripper(port, "/v1/detect", body, content_type, 10, 0.2) for _ in range(6)]
    stalled = hostile.connect(port)
    stalled.sendall(hostile.request_head(port, "/v1/detect", content_type, len(body)) + body[:100])
    started = time.monotonic()
    for dripper in drippers:
        dripper.start()
    answer = upload(url, "beside_drippers.jpg", astronaut_jpeg())
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < BODY_TIMEOUT_S + 30
    stalled_answer, stalled_closed = hostile.read_until_closed(stalled, READ_TIMEOUT_S + 5)
    stalled.close()
    assert hostile.status_of(stalled_answer) == 408 and stalled_closed
    assert b'"limit":"read_timeout_s"' in stalled_answer
    for dripper in drippers:
        dripper.join(BODY_TIMEOUT_S + 10)
        assert hostile.status_of(dripper.response) == 408 and dripper.closed
        assert b'"limit":"body_timeout_s"' in dripper.response
    assert time.monotonic() - started < BODY_TIMEOUT_S + 30
    assert detection.admission.admitted == 0 and detection.bodies.held == 0


def test_bodies_still_arriving_share_a_bounded_memory_budget(hostile_service):
    url, port, detection = hostile_service
    size = SMALL_SERVICE["max_body_bytes"] - 1000
    part = size * 3 // 4
    assert 2 * part <= detection.bodies.limit < 3 * part
    body, content_type = hostile.multipart("big.jpg", b"\0" * size)
    socks = []
    for _ in range(3):
        sock = hostile.connect(port)
        sock.sendall(hostile.request_head(port, "/v1/detect", content_type, size))
        sock.sendall(body[:part])
        socks.append(sock)
        time.sleep(0.3)
    answers = [hostile.read_until_closed(sock, READ_TIMEOUT_S + 5)[0] for sock in socks]
    for sock in socks:
        sock.close()
    assert sorted(hostile.status_of(answer) for answer in answers) == [408, 408, 503], answers
    refused = next(answer for answer in answers if hostile.status_of(answer) == 503)
    assert b"retry-after:" in refused.lower() and b'"kind":"busy"' in refused
    wait_for(lambda: detection.bodies.held == 0, 10)
    assert upload(url, "after_budget.jpg", astronaut_jpeg()).status_code == 200


def test_too_many_parts_are_refused_while_parsing_not_after_the_whole_body(hostile_service):
    """A body of thousands of tiny parts is refused (413) once its parts pass the file limit, before the rest
    arrives: the parser never works through the whole body, and the event loop never parses at all."""
    url, port, detection = hostile_service
    body, content_type = hostile.tiny_parts(20_000)
    sent = body[: len(body) // 10]  # far more parts than max_files; the rest never comes
    with hostile.connect(port) as sock:
        sock.sendall(hostile.request_head(port, "/v1/detect", content_type, len(body)) + sent)
        started = time.monotonic()
        answer, _ = hostile.read_until_closed(sock, READ_TIMEOUT_S / 2)
    assert hostile.status_of(answer) == 413, answer[:200]
    assert b'"limit":"max_files"' in answer and time.monotonic() - started < READ_TIMEOUT_S
    wait_for(lambda: detection.bodies.held == 0, 10)
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "part_head",
    [
        b'Content-Disposition: form-data; name="other"\r\n\r\n',
        b'Content-Disposition: form-data; name="files"; filename="a.jpg"\r\nX-Long: ' + b"a" * 100_000 + b"\r\n\r\n",
        b'Content-Disposition: form-data; name="files"; filename="a.jpg"\r\n' + b"X-Many: 1\r\n" * 100 + b"\r\n",
    ],
    ids=["a field other than files", "a header of 100 kB", "100 headers"],
)
def test_a_part_past_the_field_limits_is_refused_before_the_body_ends(hostile_service, part_head):
    url, port, _ = hostile_service
    content_type = f"multipart/form-data; boundary={hostile.BOUNDARY}"
    start = f"--{hostile.BOUNDARY}\r\n".encode() + part_head
    with hostile.connect(port) as sock:
        sock.sendall(hostile.request_head(port, "/v1/detect", content_type, len(start) + 1_000_000) + start)
        answer, _ = hostile.read_until_closed(sock, READ_TIMEOUT_S / 2)
    assert hostile.status_of(answer) == 400, answer[:200]


def test_connections_whose_request_head_never_completes_are_closed(hostile_service):
    url, port, _ = hostile_service
    silent, half = hostile.connect(port), hostile.connect(port)
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    for sock in (silent, half):
        received, closed = hostile.read_until_closed(sock, HEAD_TIMEOUT_S + 5)
        sock.close()
        assert closed and received == b""
    assert HEAD_TIMEOUT_S * 0.9 <= time.monotonic() - started < HEAD_TIMEOUT_S + 5
    with hostile.connect(port) as unread:
        unread.sendall(hostile.request_head(port, "/healthz", "text/plain", 1000, method="GET") + b"x" * 10)
        time.sleep(0.2)
        unread.sendall(b"x" * 10)
        received, closed = hostile.read_until_closed(unread, HEAD_TIMEOUT_S + 5)
    assert hostile.status_of(received) == 200 and closed, "a body nobody reads is not dripped for ever"
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(HEAD_TIMEOUT_S / 3)


@pytest.mark.parametrize("leave", ["close", "half-close"])
def test_a_queued_request_whose_client_left_is_neither_analysed_nor_recorded(hostile_service, leave):
    """The only slot is held (by a place taken here) until the queued client has gone: then it is freed."""
    url, port, detection = hostile_service
    name = f"left-{uuid.uuid4().hex[:8]}.jpg"
    body, content_type = hostile.multipart(name, astronaut_jpeg())
    gone_before = error_count(url, "client_gone")
    release, holding = threading.Event(), detection.admission.admit()
    holder = threading.Thread(target=detection.admission.run, args=(holding, lambda: release.wait(60)), daemon=True)
    holder.start()
    wait_for(lambda: detection.admission.in_flight == 1)
    try:
        with hostile.connect(port) as sock:
            sock.sendall(hostile.request_head(port, "/v1/detect", content_type, len(body)) + body)
            wait_for(lambda: detection.admission.queued == 1)
            if leave == "half-close":  # uvicorn closes a connection at its end of stream: no answer can reach it
                sock.shutdown(socket.SHUT_WR)
                assert hostile.read_until_closed(sock, 30) == (b"", True)
    finally:
        release.set()
    holder.join(60)
    wait_for(lambda: detection.admission.admitted == 0)
    assert name not in history_names(url)
    assert error_count(url, "client_gone") == gone_before + 1


def test_readiness_turns_false_while_no_place_has_been_free_for_a_while(hostile_service):
    url, _, detection = hostile_service
    assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200
    places = [detection.admission.admit() for _ in range(detection.admission.capacity)]
    try:
        assert all(places)
        time.sleep(UNREADY_AFTER_S)
        answer = httpx.get(f"{url}/readyz", timeout=30)
        assert answer.status_code == 503 and answer.json()["ready"] is False
        assert "queue place" in answer.json()["reason"]
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    finally:
        for place in places:
            place.give_back()
    assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200


def test_metrics_label_routes_by_template_and_unknown_paths_as_one(hostile_service):
    url, _, _ = hostile_service
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(300):
            assert client.get(f"/no/such/path/{uuid.uuid4().hex}/{i}").status_code == 404
        for _ in range(5):
            assert client.get(f"/v1/jobs/{uuid.uuid4().hex}").status_code == 404
        assert client.get("/static/app.js").status_code == 200
        text = client.get("/metrics").text
    assert "/no/such/path" not in text
    assert 'detection_requests_total{route="unmatched",status="404"} 300.0' in text
    assert 'route="/v1/jobs/{job_id}",status="404"' in text, text
    assert 'route="/static/{path}"' in text
    assert len(text) < 100_000


def test_an_image_declaring_a_bomb_is_refused_from_its_header_at_once(hostile_service):
    url, _, _ = hostile_service
    bomb = hostile.png_declaring(30000, 30000)
    started = time.monotonic()
    answer = upload(url, "bomb.png", bomb)
    elapsed = time.monotonic() - started
    result = answer.json()["results"][0]
    assert answer.status_code == 422 and result["error"]["limit"] == "max_pixels", answer.text
    assert "declares 900000000 pixels" in result["error"]["message"] and elapsed < 2.0
    small_bomb = hostile.png_declaring(4000, 3000)
    result = upload(url, "small_bomb.png", small_bomb).json()["results"][0]
    assert result["error"]["limit"] == "max_pixels" and "4000x3000 (declared)" in result["error"]["message"]


@pytest.mark.parametrize(
    "query", ["offset=9223372036854775808", "offset=-1", "limit=0", "limit=501", "offset=99999999999999999999999"]
)
def test_history_query_values_out_of_range_are_400(hostile_service, query):
    url, _, _ = hostile_service
    answer = httpx.get(f"{url}/v1/history?{query}", timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["kind"] == "bad_request"


def test_history_at_the_largest_offset_is_empty_and_times_carry_their_zone(hostile_service):
    url, _, _ = hostile_service
    upload(url, "zoned.jpg", astronaut_jpeg())
    answer = httpx.get(f"{url}/v1/history?offset=9223372036854775807", timeout=30)
    assert answer.status_code == 200 and answer.json()["items"] == []
    item = httpx.get(f"{url}/v1/history?limit=1", timeout=30).json()["items"][0]
    assert datetime.datetime.fromisoformat(item["checked_at"]).utcoffset() == datetime.timedelta(0)


@pytest.mark.parametrize("fields", [["file"], ["files", "extra"]])
def test_only_the_files_field_is_accepted(hostile_service, fields):
    url, _, detection = hostile_service
    parts = [(field, (f"{field}.jpg", astronaut_jpeg())) for field in fields]
    answer = httpx.post(f"{url}/v1/detect", files=parts, timeout=60)
    assert answer.status_code == 400 and "'files'" in answer.json()["error"]["message"], answer.text
    assert repr(fields[-1]) in answer.json()["error"]["message"]
    assert detection.admission.admitted == 0


def test_error_messages_carry_no_source_or_temporary_paths():
    opencv = (
        "the decoder failed: error: OpenCV(4.10.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:798: "
        "error: (-215:Assertion failed) !buf.empty() in function 'imdecode_'"
    )
    assert public_message(opencv) == (
        "the decoder failed: error: OpenCV(4.10.0) error: (-215:Assertion failed) !buf.empty() in function 'imdecode_'"
    )
    assert public_message("could not read /dev/shm/tmpx1y2.mp4: image/png at 1/2 speed") == (
        "could not read image/png at 1/2 speed"
    )
