"""The page in a real browser: Debian's headless Chromium, driven by Selenium, against a real uvicorn."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_helpers import CLIP, need_api, uvicorn_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Set to a path to keep a screenshot of the finished page (docs/serve.png is made this way).
SCREENSHOT_ENV = "TRT_MODNET_SERVE_SCREENSHOT"

webdriver = pytest.importorskip("selenium.webdriver", reason="the [serve] extra (selenium) is not installed")
httpx = pytest.importorskip("httpx", reason="the [serve] extra is not installed")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "Debian's chromium and chromium-driver are absent (.ci/run installs them)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need_api()
    with uvicorn_server(tmp_path_factory.mktemp("jobs")) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_uploads_a_clip_shows_the_preview_and_serves_the_download(
    server: str, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    clip = tmp_path / "carphone.mp4"
    shutil.copy(CLIP, clip)
    browser.get(server)
    browser.find_element(By.ID, "files").send_keys(str(clip))
    Select(browser.find_element(By.ID, "mode")).select_by_value("composite")
    browser.find_element(By.ID, "submit").click()
    wait = WebDriverWait(browser, 120, poll_frequency=0.2)
    job = wait.until(
        lambda b: b.find_elements(By.CSS_SELECTOR, ".job[data-state=done], .job[data-state=failed]")
    )
    assert job[0].get_attribute("data-state") == "done", job[0].text
    preview = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, ".job img.preview"))
    # Displayed means decoded: a broken image has no natural width.
    assert wait.until(lambda b: b.execute_script("return arguments[0].naturalWidth", preview)) > 0
    link = browser.find_element(By.CSS_SELECTOR, ".job a.download")
    body = httpx.get(link.get_attribute("href")).content
    listed = httpx.get(server + "/api/jobs").json()["jobs"][0]["outputs"]
    output = next(o for o in listed if link.get_attribute("href").endswith(o["url"]))
    assert len(body) == output["size"] and link.get_attribute("download") == "carphone.composite.mp4"
    assert body[4:8] == b"ftyp"  # the composite is an .mp4
    if os.environ.get(SCREENSHOT_ENV):
        browser.save_screenshot(os.environ[SCREENSHOT_ENV])
