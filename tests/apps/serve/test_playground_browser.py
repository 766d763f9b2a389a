"""The playground page in a real headless Chromium (selenium + Debian's chromium-driver): upload an image and an
IMU recording, stream the answer, draw the response's boxes on the image. Opt-in: ``pytest -m browser``.

Set ``ANYMAL_PLAYGROUND_SCREENSHOT=docs/playground.png`` to write the README's screenshot from this run.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.browser

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("fastapi")

from serve_helpers import Scripted, running  # noqa: E402

from anymal.testing import require_asset  # noqa: E402
from anymal_serve import ServerSettings, create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
ANSWER = "A woman in a naval uniform stands before a dark background. She looks at the camera."
BOX = [120, 60, 420, 560]  # x1, y1, x2, y2 in the photo's pixels


@pytest.fixture()
def browser():
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_playground_streams_an_answer_and_draws_boxes(saved_model, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from anymal_box import Boxes, PixelFrame

    photo = PixelFrame(512, 600)
    model = Scripted(saved_model[0], ANSWER, boxes=Boxes([BOX], photo), delay_s=0.01)
    imu = tmp_path / "walk.csv"
    np.savetxt(imu, np.random.default_rng(0).normal(size=(100, 6)), delimiter=",", fmt="%.4f")
    with running(create_app(model, ServerSettings(model_name="tiny-anymal"))) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: "tiny-anymal" in d.find_element(By.ID, "model").text)
        assert "image, audio, imu, video" in browser.find_element(By.ID, "model").text
        browser.find_element(By.ID, "image").send_keys(str(require_asset("images/grace_hopper.jpg")))
        browser.find_element(By.ID, "imu").send_keys(str(imu))
        prompt = browser.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("Who is in the photo, and what is the wearer doing?")
        wait.until(lambda d: d.execute_script("return document.getElementById('canvas').width") > 0)
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith(("done", "error")))
        assert browser.find_element(By.ID, "status").text == "done (stop)"
        answer = browser.find_element(By.ID, "answer").get_attribute("textContent")
        assert answer == model.text  # the streamed pieces, in order, nothing lost
        # the box's left edge, halfway down, is drawn in the first box colour (#e6194b)
        x0, y0, _, y1 = BOX
        pixel = browser.execute_script(
            "return Array.from(document.getElementById('canvas').getContext('2d')"
            ".getImageData(arguments[0], arguments[1], 1, 1).data)",
            x0,
            (y0 + y1) // 2,
        )
        assert abs(pixel[0] - 0xE6) < 40 and abs(pixel[1] - 0x19) < 40 and abs(pixel[2] - 0x4B) < 40, pixel
        shot = os.environ.get("ANYMAL_PLAYGROUND_SCREENSHOT") or str(tmp_path / "playground.png")
        assert browser.save_screenshot(shot)
    with open(shot, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_playground_shows_an_error_naming_the_part(saved_model, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"this is text, not a PNG")
    with running(create_app(saved_model[0])) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: d.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "image").send_keys(str(bad))
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_element(By.ID, "status").text.startswith(("done", "error")))
        status = browser.find_element(By.ID, "status").text
    assert status.startswith("error 400: messages[0].content[0]"), status
