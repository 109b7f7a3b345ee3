"""Headless Chromium through Selenium (for the page tests and the README figure scripts).

Uses the system's ``chromium`` and ``chromedriver`` (Debian: ``apt install chromium
chromium-driver``), both given by path so Selenium never tries to download a driver.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aekit.errors import AekitError


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None where either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@contextmanager
def headless_chromium(width: int = 1200, height: int = 900, scale: float = 1.0) -> Iterator[Any]:
    """A Selenium Chrome driver on headless Chromium with browser and network logging on."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:  # pragma: no cover - selenium is in the dev extra
        raise AekitError("selenium is not installed (pip install selenium)") from e
    found = find_browser()
    if found is None:
        raise AekitError("chromium and chromedriver are needed (apt install chromium chromium-driver)")
    chromium, driver_path = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", f"--force-device-scale-factor={scale}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        # the viewport, not the window, gets the asked size
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": scale,
                                "mobile": False})
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """Console errors and uncaught exceptions since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page requested since the last call (from the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def screenshot_png(driver: Any, full_page: bool = False) -> bytes:
    """PNG bytes of the viewport, or of the whole page with ``full_page``."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                  {"format": "png", "captureBeyondViewport": full_page})
    return base64.b64decode(shot["data"])


def save_screenshot(html: Path, png: Path, width: int, height: int, scale: float = 1.0) -> None:
    """Render a local HTML file and save a viewport screenshot (README figures)."""
    with headless_chromium(width, height, scale) as driver:
        driver.get(Path(html).resolve().as_uri())
        Path(png).write_bytes(screenshot_png(driver))
