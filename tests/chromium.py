"""Driving Debian's Chromium through Selenium and chromedriver: what the browser tests
(``tests/test_serve_browser.py``) and the playground's benchmark (``benchmarks/serve.py``)
share. Selenium is imported when a function needs it, so this module imports without it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

#: Headless, offline, and the same window size for the screenshots.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--window-size=1400,1050",
)


def chromium_executables() -> tuple[str, str] | None:
    """Chromium (``$NEURAL_KMEANS_CHROMIUM`` or ``chromium`` on the path) and
    chromedriver, or None when either is missing."""
    browser = os.environ.get("NEURAL_KMEANS_CHROMIUM") or shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return None if browser is None or driver is None else (browser, driver)


def open_chromium(
    executables: tuple[str, str], profile: str | Path, prefs: dict | None = None
) -> Any:
    """A headless Chromium (:data:`CHROMIUM_FLAGS`) with its profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = executables
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if prefs:
        options.add_experimental_option("prefs", prefs)
    return webdriver.Chrome(service=Service(driver), options=options)


def js(driver: Any, expression: str) -> Any:
    """The value of the JavaScript ``expression`` on the page."""
    return driver.execute_script(f"return {expression}")


def wait(driver: Any, condition: str, seconds: float = 60, poll: float = 0.05) -> Any:
    """Wait until the JavaScript expression ``condition`` is truthy; returns its value.
    A script error counts as "not yet" (the page's scripts may not have run when the
    first poll comes, so ``window.playground`` may still be undefined)."""
    from selenium.common.exceptions import JavascriptException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, seconds, poll_frequency=poll, ignored_exceptions=(JavascriptException,)
    ).until(lambda d: d.execute_script(f"return {condition}"), f"waited for: {condition}")


def set_value(driver: Any, element_id: str, value: object) -> None:
    """Choose ``value`` in the select, or type it into the field, ``element_id``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    element = driver.find_element(By.ID, element_id)
    if element.tag_name == "select":
        Select(element).select_by_value(str(value))
    else:
        element.clear()
        element.send_keys(str(value))
