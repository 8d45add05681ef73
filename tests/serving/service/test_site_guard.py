"""A service without keys against other websites: DNS rebinding (a foreign `Host`) is refused, a page of
another site cannot post a check, and the command line, which sends no `Origin`, keeps working."""

import cv2
import httpx
import pytest
import skimage.data

from serving.service.flags import parse_args, settings_from_args


def astronaut_jpeg():
    return cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()


def history_names(url):
    return {item["file_name"] for item in httpx.get(f"{url}/v1/history?limit=500", timeout=30).json()["items"]}


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "[::2]:80"])
def test_a_foreign_host_name_is_refused(service, host):
    url, _ = service
    for path in ("/v1/history", "/", "/healthz"):
        answer = httpx.get(url + path, headers={"Host": host}, timeout=30)
        assert answer.status_code == 400 and answer.json()["error"]["kind"] == "bad_host", (path, answer.text)


def test_loopback_names_are_answered(service):
    url, _ = service
    port = url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert httpx.get(f"{url}/v1/history", headers={"Host": host}, timeout=30).status_code == 200, host


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
    ids=["another origin", "an opaque origin", "cross-site fetch"],
)
def test_a_page_of_another_site_cannot_post_a_check(service, headers):
    url, _ = service
    name = f"cross-site-{sorted(headers)[0]}.jpg"
    answer = httpx.post(f"{url}/v1/detect", files={"files": (name, astronaut_jpeg())}, headers=headers, timeout=60)
    assert answer.status_code == 403 and answer.json()["error"]["kind"] == "cross_origin"
    assert name not in history_names(url)


def test_the_page_itself_and_the_command_line_still_post(service):
    url, _ = service
    same_site = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
    answer = httpx.post(f"{url}/v1/detect", files={"files": ("page.jpg", astronaut_jpeg())}, headers=same_site)
    assert answer.status_code == 200, answer.text
    answer = httpx.post(f"{url}/v1/detect", files={"files": ("cli.jpg", astronaut_jpeg())}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert {"page.jpg", "cli.jpg"} <= history_names(url)


def test_allowed_hosts_are_loopbacks_hosts_and_the_flags():
    assert settings_from_args(parse_args([])).allowed_hosts == ("localhost", "127.0.0.1", "::1")
    remote = parse_args(["--host", "0.0.0.0", "--auth", "none", "--allow-unauthenticated-remote"])
    assert settings_from_args(remote).allowed_hosts == ("localhost", "127.0.0.1", "::1")
    named = parse_args(["--host", "10.0.0.5", "--auth", "none", "--allow-unauthenticated-remote"])
    named.allowed_hosts = "Detect.Example.org, [fd00::1]"
    assert settings_from_args(named).allowed_hosts[3:] == ("10.0.0.5", "detect.example.org", "fd00::1")


def test_refusals_and_the_page_carry_the_security_headers(service):
    url, _ = service
    for answer in (httpx.get(url + "/", timeout=30), httpx.get(url + "/", headers={"Host": "evil.example"})):
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
