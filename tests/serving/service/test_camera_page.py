"""The page's Camera mode in a real browser: headless Chromium (Debian's, driven by Playwright) with a fake
camera that films the astronaut (a Y4M file) streams frames to /v1/live, and the page shows the rolling
verdicts as they arrive and the person's box over the video.

The screenshot is kept as a test artefact in outputs/test_artifacts/camera_page.png.
"""

import os
import time

import cv2
import pytest
import skimage.data
from playwright.sync_api import sync_playwright

from deepfake_detection import contract
from serving.service.analysis import DetectionService
from serving.service.settings import ServiceSettings
from tests.helpers import export_face_model
from tests.serving.helpers import LIMITS, serving_on_loopback
from tests.serving.service.test_detection_page import CHROMIUM, CHROMIUM_ARGS, ROOT

SCREENSHOT = os.path.join(ROOT, "outputs", "test_artifacts", "camera_page.png")


def write_y4m(path: str, frames: int = 10) -> None:
    """The astronaut as a Y4M clip (I420), the format Chromium's fake camera plays in a loop."""
    image = skimage.data.astronaut()[:, :, ::-1]
    height, width = image.shape[:2]
    planes = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F5:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + planes)


@pytest.mark.e2e
@pytest.mark.browser
def test_camera_mode_shows_rolling_verdicts_and_the_persons_box(tmp_path):
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    from serving.client.runtimes import load_model

    export_face_model(str(tmp_path / "1"), seed=1)
    settings = ServiceSettings(history_url=f"sqlite:///{tmp_path}/history.sqlite", **LIMITS)
    service = DetectionService(settings, model=load_model(str(tmp_path / "1"), contract.RUNTIME_SAVEDMODEL))
    clip = str(tmp_path / "astronaut.y4m")
    write_y4m(clip)
    camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    with serving_on_loopback(service) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, *camera, f"--use-file-for-fake-video-capture={clip}"],
        )
        page = browser.new_page(viewport={"width": 1000, "height": 1000})
        page.goto(url)
        page.click("#camera-start")
        page.wait_for_selector("#camera-verdict[data-updates]", timeout=120_000)
        deadline = time.monotonic() + 60  # the page's CSP forbids Playwright's eval-based waits
        while int(page.get_attribute("#camera-verdict", "data-updates")) < 3 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert int(page.get_attribute("#camera-verdict", "data-updates")) >= 3
        assert page.inner_text("#camera-status") == "Live"
        assert page.inner_text("#camera-verdict").split()[0] in ("fake", "uncertain", "real")
        drawn = page.evaluate(
            """() => {
              const canvas = document.querySelector('#camera-overlay');
              const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
              let painted = 0;
              for (let i = 3; i < pixels.length; i += 4) painted += pixels[i] > 0;
              return [canvas.width, canvas.height, painted];
            }"""
        )
        assert drawn[:2] == [512, 512] and drawn[2] > 200, "the person's box should be drawn over the video"
        os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
        page.click("#camera-stop")
        assert page.inner_text("#camera-status") == "Stopped"
        browser.close()
    deadline_ok = service.admission.admitted == 0
    service.close()
    assert deadline_ok, "the page's socket, closed, should have given its place back"
