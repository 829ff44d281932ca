"""The web page in headless Chromium against the gunicorn server: type a word, see its neighbours."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from server.process import ServeProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                    reason="Debian chromium + chromium-driver not installed (`make test` installs them)")
def test_search_page_shows_neighbours(live_server: ServeProcess, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

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
        driver.get(f"{live_server.url}/")
        wait = WebDriverWait(driver, 20)
        box = driver.find_element(By.ID, "word")
        box.send_keys("w1")
        # Autocomplete filled the datalist from /v1/vocab.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#suggestions option")) > 0)
        suggestions = driver.find_elements(By.CSS_SELECTOR, "#suggestions option")
        options_shown = [o.get_attribute("value") for o in suggestions]
        assert options_shown[0] == "w1" and all(w.startswith("w1") for w in options_shown)
        driver.find_element(By.ID, "k").clear()
        driver.find_element(By.ID, "k").send_keys("5")
        driver.find_element(By.ID, "search").click()
        wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#neighbors tbody tr")))
        shown = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#neighbors tbody td.word")]
        expected = requests.get(f"{live_server.url}/v1/neighbors?word=w1&k=5", timeout=10).json()
        assert shown == [n["word"] for n in expected["neighbors"]]

        driver.find_element(By.ID, "sim-a").send_keys("w1")
        driver.find_element(By.ID, "sim-b").send_keys("w2")
        driver.find_element(By.ID, "similarity").click()
        wait.until(lambda d: d.find_element(By.ID, "sim-result").text.startswith("cosine"))
        driver.find_element(By.ID, "analogy-positive").send_keys("w1 w2")
        driver.find_element(By.ID, "analogy-negative").send_keys("w3")
        driver.find_element(By.ID, "analogy").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#analogy-result li")) == 5)

        box.clear()
        box.send_keys("nosuchword")
        driver.find_element(By.ID, "search").click()
        wait.until(lambda d: "not in the vocabulary" in d.find_element(By.ID, "error").text)
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 1000
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
