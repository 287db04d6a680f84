"""Headless Chromium for tests (Debian's chromium + chromium-driver, installed by `make setup-browser`).

A browser test skips only when no browser can be installed here; under CI (CI=true) a missing browser
is a failure, never a skip."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


def chromium_paths() -> tuple[str | None, str | None]:
    return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


def make_driver(width: int = 1400, height: int = 1000):
    browser, driver_path = chromium_paths()
    if not browser or not driver_path:
        if os.environ.get("CI"):
            pytest.fail("chromium / chromedriver missing in CI: `make setup-browser` should have installed them")
        pytest.skip("no chromium here (install Debian's chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='grpo-diag-chrome-')}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=opts)
