"""The web page in headless Chromium against the gunicorn server: type a word, see its neighbours
and their map.

Set ``NLP182_SCREENSHOT=PATH`` to keep the screenshot (docs/serve-page.png is made this way).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from nlp182.server.process import ServeProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def real_server(real_run: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(real_run, "--workers", "1", "--threads", "4")
    yield server
    server.stop()


NEEDS_CHROMIUM = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian chromium + chromium-driver not installed (`make test` installs them)",
)


@contextlib.contextmanager
def _chromium() -> Iterator[Any]:
    """Headless Chromium driven by Selenium, with a profile of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1000,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never tries to download one.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@NEEDS_CHROMIUM
def test_search_page_shows_neighbours_and_their_map(real_server: ServeProcess, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    url = real_server.url
    with _chromium() as driver:
        driver.get(f"{url}/")
        wait = WebDriverWait(driver, 60)  # generous: CI runs this on 2 busy cores
        # The page says what it serves.
        wait.until(lambda d: "index" in d.find_element(By.ID, "info").text)
        info = driver.find_element(By.ID, "info").text
        ready = requests.get(f"{url}/readyz", timeout=10).json()
        for fragment in (ready["run"], f"{ready['words']:,}", f"dimensions {ready['dim']}", "index flat"):
            assert fragment in info, info
        box = driver.find_element(By.ID, "word")
        box.send_keys("pol")
        # Autocomplete filled the datalist from /v1/vocab.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#suggestions option")) > 0)
        suggestions = driver.find_elements(By.CSS_SELECTOR, "#suggestions option")
        options_shown = [o.get_attribute("value") for o in suggestions]
        assert options_shown[0] == "police" and all(w.startswith("pol") for w in options_shown)
        box.send_keys("ice")
        driver.find_element(By.ID, "k").clear()
        driver.find_element(By.ID, "k").send_keys("8")
        driver.find_element(By.ID, "search").click()
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#neighbors tbody tr")))
        shown = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#neighbors tbody td.word")]
        expected = requests.get(f"{url}/v1/neighbors?word=police&k=8", timeout=10).json()
        assert shown == [n["word"] for n in expected["neighbors"]]
        # The map: the query word (highlighted) and its 8 neighbours, placed as /v1/map says.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map text")) == 9)
        labels = driver.find_elements(By.CSS_SELECTOR, "#map text")
        assert [label.text for label in labels] == ["police", *shown]
        assert labels[0].get_attribute("class") == "query"
        points = requests.get(f"{url}/v1/map?word=police&k=8", timeout=10).json()["points"]
        dots = driver.find_elements(By.CSS_SELECTOR, "#map circle")
        xs = [float(dot.get_attribute("cx")) for dot in dots]
        assert sorted(range(9), key=xs.__getitem__) == sorted(range(9), key=lambda i: points[i]["x"])
        screenshot = Path(os.environ.get("NLP182_SCREENSHOT", tmp_path / "page.png"))
        driver.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 1000

        driver.find_element(By.ID, "sim-a").send_keys("police")
        driver.find_element(By.ID, "sim-b").send_keys("government")
        driver.find_element(By.ID, "similarity").click()
        wait.until(lambda d: d.find_element(By.ID, "sim-result").text.startswith("cosine"))
        driver.find_element(By.ID, "analogy-positive").send_keys("president australia")
        driver.find_element(By.ID, "analogy-negative").send_keys("government")
        driver.find_element(By.ID, "analogy").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#analogy-result li")) == 5)

        box.clear()
        box.send_keys("nosuchword")
        driver.find_element(By.ID, "search").click()
        wait.until(lambda d: "not in the vocabulary" in d.find_element(By.ID, "error").text)
        assert driver.find_elements(By.CSS_SELECTOR, "#map text") == []
        # An autocomplete answer that arrives after the failed search leaves its message in place.
        box.send_keys(Keys.BACKSPACE)
        time.sleep(1.5)  # the 150 ms debounce, the /v1/vocab call and its answer
        assert "not in the vocabulary" in driver.find_element(By.ID, "error").text


@NEEDS_CHROMIUM
def test_the_page_asks_no_more_answers_than_the_server_gives(real_run: Path) -> None:
    """With ``--max-k 5`` the page's k of 10 was refused on every search: it takes the server's
    default and bound from its OpenAPI document."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = ServeProcess(real_run, "--workers", "1", "--threads", "2", "--max-k", "5")
    try:
        with _chromium() as driver:
            driver.get(f"{server.url}/")
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.find_element(By.ID, "k").get_attribute("max") == "5")
            assert driver.find_element(By.ID, "k").get_attribute("value") == "5"
            driver.find_element(By.ID, "word").send_keys("police")
            driver.find_element(By.ID, "search").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map text")) == 6)
            assert len(driver.find_elements(By.CSS_SELECTOR, "#neighbors tbody tr")) == 5
            assert driver.find_element(By.ID, "error").text == ""
    finally:
        server.stop()
    server = ServeProcess(real_run, "--workers", "1", "--threads", "2", "--max-k", "3")
    try:  # the analogy form asked for 5 answers whatever the bound
        with _chromium() as driver:
            driver.get(f"{server.url}/")
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.find_element(By.ID, "k").get_attribute("max") == "3")
            driver.find_element(By.ID, "analogy-positive").send_keys("police officers")
            driver.find_element(By.ID, "analogy").click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#analogy-result li")) == 3)
            assert driver.find_element(By.ID, "error").text == ""
    finally:
        server.stop()
