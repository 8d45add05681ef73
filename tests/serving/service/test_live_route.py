"""`/v1/live`: frames in over a WebSocket, rolling verdicts out, under the service's keys, limits and site
guard, with a real face model run in this process and the astronaut's face as the camera."""

import struct
import time

import cv2
import numpy as np
import pytest
import skimage.data
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from deepfake_detection import contract
from serving.service.analysis import DetectionService
from serving.service.detection_service import create_app
from serving.service.live_route import MAX_FRAME_BYTES
from serving.service.settings import ServiceSettings
from tests.helpers import export_face_model
from tests.serving.helpers import LIMITS

UPDATE_KEYS = {"media_time_s", "latency_s", "verdict", "fake_probability", "persons"}
PERSON_KEYS = {"track_id", "fake_probability", "tier", "box"}
HOST = {"allowed_hosts": ("testserver",)}  # the Host the test client sends


@pytest.fixture(scope="module")
def face_model(tmp_path_factory):
    from serving.client.runtimes import load_model

    path = str(tmp_path_factory.mktemp("live_model") / "1")
    export_face_model(path, seed=1)
    return load_model(path, contract.RUNTIME_SAVEDMODEL)


def frame(media_time: float, image: np.ndarray = None) -> bytes:
    """One message of the route's framing: 8 bytes of media time, then a JPEG."""
    picture = skimage.data.astronaut()[:, :, ::-1] if image is None else image
    return struct.pack(">d", media_time) + cv2.imencode(".jpg", picture)[1].tobytes()


@pytest.fixture
def make_service(face_model, tmp_path):
    made = []

    def make(**overrides) -> DetectionService:
        settings = ServiceSettings(
            history_url=f"sqlite:///{tmp_path}/h{len(made)}.sqlite", **{**LIMITS, **HOST, **overrides}
        )
        made.append(DetectionService(settings, model=face_model))
        return made[-1]

    yield make
    for service in made:
        service.close()


def client(service: DetectionService) -> TestClient:
    return TestClient(create_app(service))


def test_each_frame_gets_an_update_in_the_documented_shape(make_service):
    with client(make_service()) as http, http.websocket_connect("/v1/live?window=3") as socket:
        updates = []
        for media_time in (0.0, 0.2, 0.4, 0.6):
            socket.send_bytes(frame(media_time))
            updates.append(socket.receive_json())
    assert [u["media_time_s"] for u in updates] == [0.0, 0.2, 0.4, 0.6]
    for update in updates:
        assert set(update) == UPDATE_KEYS and update["latency_s"] >= 0
        assert update["verdict"] in ("fake", "uncertain", "real")
        assert update["persons"] and all(set(p) == PERSON_KEYS for p in update["persons"])
        x, y, w, h = update["persons"][0]["box"]
        assert 0 <= x < 512 and 0 <= y < 512 and w > 20 and h > 20  # the astronaut's face


def test_without_a_valid_key_the_socket_closes_with_policy_violation(make_service):
    service = make_service(auth="keys")
    key = service.keys.create("alice")
    with client(service) as http:
        for headers in ({}, {"Authorization": "Bearer dfk_0000000000000000_" + "x" * 43}):
            with http.websocket_connect("/v1/live", headers=headers) as socket:
                with pytest.raises(WebSocketDisconnect) as closed:
                    socket.receive_json()
            assert closed.value.code == 1008
        with http.websocket_connect("/v1/live", subprotocols=["bearer", key]) as socket:
            assert socket.accepted_subprotocol == "bearer"
            socket.send_bytes(frame(0.0))
            assert set(socket.receive_json()) == UPDATE_KEYS
        with http.websocket_connect("/v1/live", headers={"Authorization": f"Bearer {key}"}) as socket:
            socket.send_bytes(frame(0.0))
            assert set(socket.receive_json()) == UPDATE_KEYS
    assert service.admission.admitted == 0


def test_limits_answer_an_error_and_an_oversized_frame_closes(make_service):
    big = cv2.resize(skimage.data.astronaut(), (1024, 1024))
    with client(make_service()) as http, http.websocket_connect("/v1/live") as socket:
        socket.send_bytes(frame(0.0, big))
        assert socket.receive_json()["error"]["limit"] == "max_pixels"
        socket.send_bytes(struct.pack(">d", 0.1) + b"GIF89a not a frame")
        assert socket.receive_json()["error"]["kind"] == "media_type"
        socket.send_bytes(frame(0.2))  # still open after a refused frame
        assert socket.receive_json()["media_time_s"] == 0.2
        socket.send_bytes(struct.pack(">d", 0.3) + b"\xff\xd8\xff" + bytes(MAX_FRAME_BYTES))
        assert socket.receive_json()["error"]["limit"] == "max_frame_bytes"
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 1009


def _eventually(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_client_that_leaves_mid_analysis_frees_its_place(make_service):
    service = make_service(max_in_flight=1, max_queued=0)
    with client(service) as http:
        with http.websocket_connect("/v1/live") as socket:
            assert _eventually(lambda: service.admission.admitted == 1)
            with http.websocket_connect("/v1/live") as second:
                with pytest.raises(WebSocketDisconnect) as refused:
                    second.receive_json()
                assert refused.value.code == 1013
            for media_time in (0.0, 0.1, 0.2):
                socket.send_bytes(frame(media_time))
        # gone while its frames were analysed
        assert _eventually(lambda: service.admission.admitted == 0)
        with http.websocket_connect("/v1/live") as socket:
            socket.send_bytes(frame(0.0))
            assert socket.receive_json()["media_time_s"] == 0.0


def test_a_page_of_another_site_may_not_connect(make_service):
    with client(make_service()) as http:
        with pytest.raises(WebSocketDisconnect) as closed:  # refused before the upgrade is accepted
            http.websocket_connect("/v1/live", headers={"Origin": "http://evil.example"}).__enter__()
        assert closed.value.code == 1008
        with http.websocket_connect("/v1/live", headers={"Origin": "http://testserver"}) as socket:
            socket.send_bytes(frame(0.0))
            assert set(socket.receive_json()) == UPDATE_KEYS
