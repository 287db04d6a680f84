"""Screenshots for the README: `python -m dashboards.screenshots RUNS_DIR OUT_DIR`.

The three pages on the demo runs (a TRL run recorded by the hook), and the run page of two imported
public runs from ../shared/real_logs (or $GRPO_DIAG_REAL_LOGS) when they are there: a verl console log
and a trainer_state.json with four held-out sets, imported into RUNS_DIR as `grpo-diag import` would,
with the options their pre-registered labels give (benchmarks/real_runs/labels.toml).
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
IMPORTED = {  # file -> the labelled real run it shows
    "run-imported-verl-console.png": "verl-gpg-qwen2-7b",
    "run-imported-trainer-state.png": "vlmexp-s3-e2-dapo",
}
ROOT = Path(__file__).resolve().parents[1]


def import_examples(root: str) -> dict[str, tuple[str, str, int]]:
    """Import the IMPORTED runs into `root` (when the shared logs are here); their pages to shoot."""
    import os
    import tomllib

    from diag.importers import import_log

    logs = Path(os.environ.get("GRPO_DIAG_REAL_LOGS") or ROOT.parent / "shared" / "real_logs")
    labels = {e["name"]: e for e in tomllib.loads((ROOT / "benchmarks" / "real_runs" / "labels.toml").read_text())["run"]}
    pages = {}
    for fname, name in IMPORTED.items():
        e = labels[name]
        if not (logs / e["path"]).exists():
            print(f"{logs / e['path']}: not here, {fname} skipped", file=sys.stderr)
            continue
        import_log(logs / e["path"], fmt=e.get("format", "auto"), name=name, root=root, profile=e.get("profile"),
                   eval_size=e.get("eval_size"), overwrite=True)
        pages[fname] = (f"/run/{name}", ".js-plotly-plot .main-svg", 6)
    return pages


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
    pages = {**PAGES, **import_examples(root)}
    d = driver(1300, 2300)
    try:
        with serving(root) as base:
            for fname, (path, selector, count) in pages.items():
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
