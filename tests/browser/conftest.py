"""A real browser on the pages: Debian's chromium, driven by Selenium through Debian's
chromium-driver (a browser a test tool downloads cannot be fetched here), headless, against a
live daemon serving HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.http.conftest import Live, start_live

REQUIRE = "TRANSCRIBD_REQUIRE_BROWSER"
"""Set (as CI sets it), a missing browser fails the tests instead of skipping them."""
SCREENSHOTS = "TRANSCRIBD_SCREENSHOTS"
"""A folder the tests save their screenshots to (the README's come from there)."""
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900",
)


def chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(browser) and os.path.exists(driver)):
        why = (
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver)"
        )
        if os.environ.get(REQUIRE):
            pytest.fail(why)
        pytest.skip(why)
    return browser, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(60)
    yield session
    session.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[Live]:
    """A daemon serving the pages (keys asked for), its models warm for the module."""
    live = start_live(tmp_path_factory.mktemp("site"), model_cache)
    yield live
    live.daemon.stop()


def sign_in(driver: Any, live: Live) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{live.url}/login")
    driver.find_element(By.NAME, "key").send_keys(live.key)
    driver.find_element(By.CSS_SELECTOR, 'form[action="/login"] button').click()
    wait_for(lambda: driver.current_url.rstrip("/") == live.url, "the queue after signing in")


def wait_for(ready: Callable[[], object], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = ready()
        except Exception:  # an element replaced under us, say: look again
            got = None
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout:g} s for {what}")


def screenshot(driver: Any, name: str, tmp: Path) -> Path:
    folder = Path(os.environ.get(SCREENSHOTS) or tmp)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
