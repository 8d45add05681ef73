"""The web page in a real browser: headless Chromium (Debian's package, driven by Playwright) uploads a
sample video and sees the verdict, the gauge, the face crops with their maps, the frame where the most fake
person is most fake under its map, and the timeline plot.

The screenshot is kept as a test artefact in outputs/test_artifacts/detection_page.png.
"""

import os

import cv2
import pytest
import skimage.data
from playwright.sync_api import sync_playwright

from deepfake_detection.ingest.readers import read_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = os.path.join(ROOT, "outputs", "test_artifacts", "detection_page.png")
# Chromium as the machine's own probe runs it: no sandbox (root), no GPU, no background network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.e2e
@pytest.mark.browser
def test_page_uploads_a_video_and_shows_verdict_faces_and_timeline(service, sample_dataset):
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    url, _ = service
    video = sorted(r.path for r in read_dataset(sample_dataset))[1]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        requested, failed = [], []
        page.on("request", lambda request: requested.append(request.url))
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(url)
        page.set_input_files("#picker", video)
        page.wait_for_selector(".result .verdict", timeout=120_000)
        verdict = page.inner_text(".result .verdict")
        assert verdict in ("Fake", "Uncertain", "Real")
        assert page.inner_text(".result .explanation")
        assert page.locator(".result svg.gauge path.zone").count() == 3
        assert page.locator(".result svg.gauge").count() == 1
        assert page.locator(".result svg.timeline path.track").count() >= 1
        assert page.locator(".result .face img").count() >= 2
        # "Show where" is on by default: a map on every face crop, and on the frame of the most fake face
        assert page.locator(".result .face canvas.heatmap").count() == page.locator(".result .face img").count()
        page.wait_for_selector(".result canvas.frame-heatmap[data-frame]", timeout=30_000)
        assert page.get_attribute(".result canvas.frame-heatmap", "data-frame") == "drawn"
        painted = page.evaluate(
            """() => {
              const canvas = document.querySelector('.result canvas.frame-heatmap');
              const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
              let colours = new Set();
              for (let i = 0; i < pixels.length; i += 4 * 97) colours.add(pixels[i] >> 4 << 8 | pixels[i + 1] >> 4);
              return colours.size;
            }"""
        )
        assert painted > 20, "the frame itself should be drawn under the map, not a flat fill"
        page.wait_for_selector("#history tbody tr")
        assert os.path.basename(video) in page.inner_text("#history")
        os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
        browser.close()
    assert not failed, failed
    # blob: URLs of this page's origin are the uploaded file, read back by the browser itself
    external = [r for r in requested if not r.startswith((url, "data:", f"blob:{url}"))]
    assert not external, f"the page must work without external resources: {external}"


@pytest.mark.e2e
@pytest.mark.browser
def test_wrong_verdict_control_sends_feedback_shown_in_the_history(service):
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    url, detection = service
    image = os.path.join(os.path.dirname(SCREENSHOT), "feedback_face.png")
    os.makedirs(os.path.dirname(image), exist_ok=True)
    cv2.imwrite(image, cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.goto(url)
        page.uncheck("#explain")
        page.set_input_files("#picker", image)
        page.wait_for_selector(".result .feedback summary", timeout=120_000)
        assert page.inner_text(".result .feedback summary") == "Wrong verdict?"
        page.click(".result .feedback summary")
        page.check(".result .feedback input[value=fake]")
        page.fill(".result .feedback input[name=note]", "from the page")
        page.click(".result .feedback button")
        page.wait_for_selector(".result .feedback-status:not(:empty)")
        assert page.inner_text(".result .feedback-status") == "Thank you: recorded as fake."
        page.locator("#history tbody", has_text="from the page").wait_for()
        browser.close()
    [check] = [
        item for item in detection.history.page(50, 0)[0] if (item["feedback"] or {}).get("note") == "from the page"
    ]
    assert check["feedback"]["label"] == "fake" and check["file_name"] == "feedback_face.png"
