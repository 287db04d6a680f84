"""Reports of the demo runs: statistics traceable, HTML self-contained and rendered in Chromium."""

import json

import pytest

import diag
from diag.cli import main
from diag.detect import detect_all
from scipy.stats import spearmanr
from diag.report import build, render

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]
NAMES = ["strong-healthy", "weak-signal-gap", "deceptive-reward"]


def test_report_numbers_are_traceable(demo_runs):
    rep = build(diag.open_run(demo_runs / "deceptive-reward"))
    c = rep["correlation"]
    assert c["eval_set"] == "heldout" and c["steps"][0] == 0 and c["n"] == len(rep["pairs"])
    # the correlation is the one of the pairs the report prints (its sign is this run's, not a contract)
    pairs = [(p["reward"], p["accuracy"]) for p in rep["pairs"] if p["reward"] is not None and p["accuracy"] is not None]
    assert c["spearman"]["r"] == pytest.approx(spearmanr(*zip(*pairs)).statistic, abs=1e-9)
    assert c["spearman"]["ci95"][0] <= c["spearman"]["r"] <= c["spearman"]["ci95"][1]
    dec = [f for f in detect_all(diag.open_run(demo_runs / "deceptive-reward")) if f.kind == "decoupling"]
    assert rep["decoupling_onset"]["step"] == dec[-1].onset and rep["decoupling_onset"]["state"] == dec[-1].state
    assert {t["series"].split(" (")[0] for t in rep["trends"]} == {"held-out accuracy", "training reward"}
    assert all("steps" in w for w in rep["sliding_correlation"])
    assert "lenient_correct" in rep["component_correlation"]
    weak = build(diag.open_run(demo_runs / "weak-signal-gap"))
    assert weak["signal"]["frac_all_fail"]["mean"] >= 0.75


def test_report_cli_formats(demo_runs, tmp_path):
    runs = [str(demo_runs / n) for n in NAMES]
    assert main(["report", *runs, "--format", "json", "-o", str(tmp_path / "r.json")]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert [d["run"] for d in data] == NAMES
    assert main(["report", runs[0], "--format", "md", "-o", str(tmp_path / "r.md")]) == 0
    md = (tmp_path / "r.md").read_text()
    assert "| Spearman reward vs accuracy |" in md and "Trend tests" in md


@pytest.mark.browser
def test_html_reports_render_offline_in_chromium(demo_runs, tmp_path):
    from tests.browser import make_driver

    paths = []
    for n in NAMES:
        p = tmp_path / f"{n}.html"
        p.write_text(render([diag.open_run(demo_runs / n)], "html"))
        paths.append(p)
    cmp_ = tmp_path / "compare.html"
    cmp_.write_text(render([diag.open_run(demo_runs / n) for n in NAMES], "html"))
    paths.append(cmp_)
    driver = make_driver()
    try:
        for p, n_figs in zip(paths, [2, 2, 2, 6]):
            driver.get(p.as_uri())
            driver.implicitly_wait(5)
            assert driver.execute_script("return typeof window.Plotly") == "object"
            # self-contained: no external scripts, and the page fetched nothing over the network
            assert driver.execute_script("return document.querySelectorAll('script[src]').length") == 0
            assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
            plots = driver.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length")
            assert plots >= n_figs
            assert "grpo-diag report" in driver.title or "grpo-diag report" in driver.page_source
    finally:
        driver.quit()
