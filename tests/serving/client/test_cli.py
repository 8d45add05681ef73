"""The command line's HTTP client: streamed uploads, and a full service answered by waiting as it asks."""

import json
from http.server import BaseHTTPRequestHandler

import pytest

from pipeline_runner import main
from serving.client.detect import remote_analyser
from tests.helpers import loopback_http_server


class _BusyOnceService(BaseHTTPRequestHandler):
    """A `/v1/detect` that is full for the first request (503, Retry-After: 1), then answers."""

    requests = []
    authorizations = []
    busy_status = 503

    def do_POST(self):  # noqa: N802 - http.server's handler name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append(body)
        self.authorizations.append(self.headers.get("Authorization"))
        if len(self.requests) == 1:
            payload, status = {"error": {"kind": "busy", "message": "full", "limit": "max_queue"}}, self.busy_status
        else:
            payload, status = {"results": [{"file_name": "clip.mp4", "verdict": "real"}]}, 200
        data = json.dumps(payload).encode()
        self.send_response(status)
        if status != 200:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def busy_once_service():
    _BusyOnceService.requests, _BusyOnceService.authorizations, _BusyOnceService.busy_status = [], [], 503
    with loopback_http_server(_BusyOnceService) as url:
        yield url


def test_a_503_with_retry_after_is_retried_and_the_file_sent_whole_each_time(busy_once_service, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    status, answer = remote_analyser(busy_once_service, timeout_s=30)(str(video))
    assert (status, answer["verdict"]) == (200, "real")
    assert len(_BusyOnceService.requests) == 2
    for body in _BusyOnceService.requests:
        assert b'filename="clip.mp4"' in body and video.read_bytes() in body


def test_an_unreachable_service_is_an_answer_per_file_and_a_failing_exit_code(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"data")
    code = main(["detect", str(video), "--service", "http://127.0.0.1:9", "--json", "--timeout-s", "5"])
    [row] = json.loads(capsys.readouterr().out)
    assert code == 1
    assert row["status"] == 503 and row["error"]["message"].startswith("service unreachable")


def test_the_api_key_goes_in_the_authorization_header_from_the_flag_or_the_environment(
    busy_once_service, tmp_path, monkeypatch, capsys
):
    """A key's full share is answered 429 with Retry-After: waited for like a full service."""
    _BusyOnceService.busy_status = 429
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"data")
    assert main(["detect", str(video), "--service", busy_once_service, "--api-key", "dfk_flag", "--json"]) == 0
    assert _BusyOnceService.authorizations == ["Bearer dfk_flag", "Bearer dfk_flag"]
    monkeypatch.setenv("DEEPFAKE_API_KEY", "dfk_environment")
    assert main(["detect", str(video), "--service", busy_once_service, "--json"]) == 0
    assert _BusyOnceService.authorizations[-1] == "Bearer dfk_environment"
    assert "dfk_" not in capsys.readouterr().out
