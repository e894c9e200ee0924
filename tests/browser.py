"""Headless Chromium (Debian's `chromium` and `chromium-driver`, installed by scripts/setup.sh) driven through
selenium, with waits that leave a screenshot and the page source behind when what they wait for never shows."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 180  # single-page apps render after their API calls answer; a loaded two-core machine is slow at both


@contextlib.contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))  # the Debian driver: no download
    try:
        yield driver
    finally:
        driver.quit()


def send_basic_auth(driver: webdriver.Chrome, user: str, password: str) -> None:
    """Send HTTP basic credentials with every request of the page, its scripts' API calls included."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})


def body_text(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def wait_until(driver: webdriver.Chrome, condition, what: str, evidence: Path, timeout_s: float = WAIT_S):
    """The condition's first truthy value; else an AssertionError naming the screenshot and page source saved."""
    try:
        return WebDriverWait(driver, timeout_s).until(condition)
    except TimeoutException:
        evidence.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() else "-" for c in what)[:80]
        screenshot, source = evidence / f"{name}.png", evidence / f"{name}.html"
        driver.save_screenshot(str(screenshot))
        source.write_text(driver.page_source)
        raise AssertionError(f"{what}: not seen on {driver.current_url} within {timeout_s:.0f} s "
                             f"(screenshot {screenshot}, page source {source})") from None


def wait_for_text(driver: webdriver.Chrome, text: str, evidence: Path) -> None:
    wait_until(driver, lambda d: text in body_text(d), f"{text!r} on the page", evidence)
