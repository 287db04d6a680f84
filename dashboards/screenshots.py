"""Screenshots of the three pages for the README: `python -m dashboards.screenshots RUNS_DIR OUT_DIR`.

Uses Debian's chromium + chromedriver through selenium (as the browser tests do)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

# file -> (path, CSS selector that must be present, how many)
PAGES = {
    "runs.png": ("/", ".dash-spreadsheet td", 4),
    "run-deceptive-reward.png": ("/run/deceptive-reward", ".js-plotly-plot .main-svg", 6),
    "compare.png": ("/compare?runs=strong-healthy,weak-signal-gap,deceptive-reward", ".js-plotly-plot .main-svg", 1),
}


def driver(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--window-size={width},{height}",
                 f"--user-data-dir={tempfile.mkdtemp()}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main(root: str, out: str) -> list[Path]:
    from dashboards.serve_thread import serving

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    d = driver(1300, 2300)
    try:
        with serving(root) as base:
            for fname, (path, selector, count) in PAGES.items():
                d.get(base + path)
                end = time.monotonic() + 30
                while time.monotonic() < end and d.execute_script(
                        f"return document.querySelectorAll('{selector}').length") < count:
                    time.sleep(0.2)
                time.sleep(1.5)  # let plotly finish its transitions
                d.save_screenshot(str(out_dir / fname))
                shots.append(out_dir / fname)
    finally:
        d.quit()
    return shots


if __name__ == "__main__":
    for p in main(sys.argv[1] if len(sys.argv) > 1 else "runs", sys.argv[2] if len(sys.argv) > 2 else "docs/screenshots"):
        print(p)
