"""The dashboard in a real headless Chromium: every page on the demo runs, live updates, escaping."""

import shutil
import time

import numpy as np
import pytest

import diag
from dashboards import ids
from diag.detect import detect_all

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("demo")]


@pytest.fixture
def served(tmp_path):
    """Serve a runs root on a free loopback port; yields (root, base_url)."""
    from dashboards.serve_thread import serving

    root = tmp_path / "runs"
    root.mkdir()
    with serving(root) as base:
        yield root, base


@pytest.fixture
def browser():
    from tests.browser import make_driver

    d = make_driver(1300, 1800)
    yield d
    d.quit()


def wait_for(driver, fn, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # noqa: BLE001 - the page may still be rendering
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def js(driver, script):
    return driver.execute_script(script)


def test_pages_render_on_demo_runs(demo_runs, served, browser):
    root, base = served
    for n in ("strong-healthy", "weak-signal-gap", "deceptive-reward"):
        shutil.copytree(demo_runs / n, root / n)
    browser.get(base + "/")
    wait_for(browser, lambda: "deceptive-reward" in browser.page_source and "weak-signal-gap" in browser.page_source,
             what="runs table")
    text = browser.find_element("id", ids.RUNS_TABLE).text
    assert "decoupling" in text and "signal_gap" in text and "finished" in text

    browser.get(base + "/run/deceptive-reward")
    wait_for(browser, lambda: js(browser, f"return document.querySelectorAll('#{ids.FIG_REWARD_ACC} .main-svg').length") > 0,
             what="reward/accuracy graph")
    wait_for(browser, lambda: js(browser, "return document.querySelectorAll('.js-plotly-plot').length") >= 6, what="graphs")
    # the graphs exist before their first drawing fills them: wait for the traces, not only the axes
    names = wait_for(browser, lambda: js(browser, f"return document.getElementById('{ids.FIG_REWARD_ACC}')"
                                                  ".querySelector('.js-plotly-plot').data.map(t => t.name)"), what="traces")
    assert "held-out accuracy" in names and "reward (total)" in names
    shapes = js(browser, f"return document.getElementById('{ids.FIG_REWARD_ACC}').querySelector('.js-plotly-plot')"
                         ".layout.shapes.length")
    assert shapes >= 1  # the decoupling window is shaded
    alerts = browser.find_element("id", ids.ALERTS).text
    onset = next(f.onset for f in detect_all(diag.open_run(root / "deceptive-reward")) if f.kind == "decoupling")
    assert "decoupling" in alerts and f"onset step {onset}" in alerts  # the onset stored / derived for this run
    assert alerts.count("decoupling:") == 1  # once, with its state, not once per source
    assert "FIRING" in alerts or "RESOLVED" in alerts
    wait_for(browser, lambda: "lenient_correct" in browser.page_source, what="reward function names")

    browser.get(base + "/compare?runs=strong-healthy,weak-signal-gap,deceptive-reward")
    wait_for(browser, lambda: js(browser, f"return document.getElementById('{ids.FIG_COMPARE}')"
                                          ".querySelector('.js-plotly-plot').data.length") >= 6, what="compare traces")
    # the equal-cost table: one row per run, every run labelled plain GRPO (the demo uses no remedy)
    wait_for(browser, lambda: browser.find_element("id", ids.COMPARE_BUDGET).text.count("plain GRPO") == 3,
             what="equal-cost table")


def test_live_run_updates_without_reload(served, browser):
    root, base = served
    rec = diag.Recorder(str(root), "live", ["r"], group_size=4, flush_secs=0)
    for s in range(1, 6):
        rec.log_batch(s, np.ones(16) * 0.5 * (s % 2))
    browser.get(base + "/run/live")
    # _fullData holds the decoded arrays (figures send numpy data as typed-array payloads)
    xmax = (f"return Math.max(...Array.from(document.getElementById('{ids.FIG_REWARD_ACC}')"
            ".querySelector('.js-plotly-plot')._fullData[0].x))")
    wait_for(browser, lambda: js(browser, xmax) == 5, what="first steps")
    js(browser, "window.__marker = 42")  # survives only if the page is not reloaded
    t0 = time.monotonic()
    for s in range(6, 11):
        rec.log_batch(s, np.ones(16) * 0.5)
    wait_for(browser, lambda: js(browser, xmax) == 10, timeout=10, what="appended steps")
    assert time.monotonic() - t0 < 10
    assert js(browser, "return window.__marker") == 42
    rec.close()


def test_completion_with_script_is_shown_as_text(served, browser):
    root, base = served
    rec = diag.Recorder(str(root), "xss", ["r"], group_size=4, flush_secs=0)
    payload = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned=2'>"
    rec.log_batch(1, np.array([1.0, 0, 1, 0]), prompts=["<b>prompt</b>"] * 4, completions=[payload] * 4)
    rec.close()
    browser.get(base + "/run/xss")
    wait_for(browser, lambda: payload in browser.find_element("id", ids.COMPLETIONS).text, what="completion text")
    assert js(browser, "return window.__pwned") is None
    assert js(browser, f"return document.getElementById('{ids.COMPLETIONS}').querySelectorAll('script, img').length") == 0


def test_completions_filter_rewarded_but_untrue(served, browser):
    from selenium.webdriver.common.by import By

    root, base = served
    rec = diag.Recorder(str(root), "untrue", ["lenient"], group_size=4, flush_secs=0)
    rec.log_batch(1, np.array([1.0, 0.5, 0.0, 1.0]), truth=[True, False, False, True], prompts=["p"] * 4,
                  completions=["right", "paid-but-wrong", "unpaid-wrong", "right-too"])
    rec.close()
    browser.get(base + "/run/untrue")
    wait_for(browser, lambda: "unpaid-wrong" in browser.find_element("id", ids.COMPLETIONS).text, what="all completions")
    browser.find_element("id", ids.SIGNAL_FILTER).click()  # Dash 4: a button opening a list of options
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "input[value='rewarded_untrue']"), what="options")
    option = browser.find_element(By.CSS_SELECTOR, "input[value='rewarded_untrue']")
    option.find_element(By.XPATH, "ancestor::label").click()
    table = lambda: browser.find_element("id", ids.COMPLETIONS).text  # noqa: E731
    wait_for(browser, lambda: "unpaid-wrong" not in table() and "paid-but-wrong" in table(), what="filtered table")
    assert "right-too" not in table()


def test_imported_verl_rollouts_show_groups_and_the_signal_gap(served, browser):
    """A verl rollout dump (written by verl's own code, tests/fixtures/verl) imported and opened in
    Chromium: the signal chart has its all-fail series, the heatmap its groups, the alert its verdict."""
    from pathlib import Path

    from diag.importers import import_log

    root, base = served
    fix = Path(__file__).parent / "fixtures" / "verl" / "v1"
    import_log(fix / "rollout", root=str(root), name="verl-v1", validation_dir=str(fix / "validation"),
               metrics=str(fix / "metrics.jsonl"))
    browser.get(base + "/run/verl-v1")
    wait_for(browser, lambda: js(browser, "return document.querySelectorAll('.js-plotly-plot').length") >= 6, what="graphs")
    names = js(browser, f"return document.getElementById('{ids.FIG_SIGNAL}').querySelector('.js-plotly-plot')"
                        ".data.map(t => t.name)")
    assert "all_fail" in names
    heat = js(browser, f"return document.getElementById('{ids.FIG_HEATMAP}').querySelector('.js-plotly-plot')"
                       ".data.length")
    assert heat >= 1
    wait_for(browser, lambda: "signal_gap" in browser.find_element("id", ids.ALERTS).text, what="signal-gap alert")
    assert "FIRING" in browser.find_element("id", ids.ALERTS).text
    # its prompts: the per-prompt history one click away
    browser.find_element("id", "prompts-link").click()
    wait_for(browser, lambda: "later visits" in browser.find_element("id", "prompts-skip").text, what="skip summary")
    wait_for(browser, lambda: js(browser, f"return document.querySelectorAll('#{ids.FIG_PROMPTS} .main-svg').length") > 0,
             what="dead-by-visit chart")
    assert "What is" in browser.find_element("id", ids.PROMPTS_TABLE).text


def test_sft_fallback_run_shows_its_phases_and_both_probes(served, browser, cache_dir):
    """A run in phases (GRPO, the SFT warm-start, GRPO again) in Chromium: the phase list with the probe
    before and after the warm-start, the phases marked on the chart, the gap alert in its stored state."""
    import polars as pl

    from diag.detect.run import DetectParams
    from diag.detect.signal_gap import SignalGapParams
    from diag.monitor import MonitorConfig
    from training.config import from_dict
    from training.fallback import run_with_fallback

    root, base = served
    cfg = from_dict({"name": "fallback", "model": {"path": "base:weak"}, "task": {"name": "add2", "n_train": 2000, "n_eval": 60},
                     "grpo": {"steps": 16, "num_generations": 4, "prompts_per_step": 4, "max_completion_length": 8,
                              "rewards": ["strict_correct"]},
                     "sft": {"steps": 300, "eval_every": 300}, "heldout": {"every": 4, "max_new_tokens": 8},
                     "probe": {"prompts": 30, "k": 8}, "monitor": {"console": False},
                     "remedy": {"on_signal_gap": "sft", "fallback_when": "monitor"}})
    run = diag.open_run(run_with_fallback(cfg, str(root), progress=False, monitor=MonitorConfig(
        console=False, params=DetectParams(signal_gap=SignalGapParams(window=4)))))
    kinds = [p["phase"] for p in run.meta["phases"]]
    browser.get(base + "/run/fallback")
    wait_for(browser, lambda: browser.find_element("id", "phases").text, what="phase list")
    text = browser.find_element("id", "phases").text
    assert text.count("GRPO: steps") == kinds.count("grpo") and text.count("SFT warm-start: steps") == kinds.count("sft")
    assert "pre-flight probe" in browser.find_element("id", "probe").text
    notes = js(browser, f"return document.getElementById('{ids.FIG_REWARD_ACC}').querySelector('.js-plotly-plot')"
                        ".layout.annotations.map(a => a.text)")
    assert notes.count("GRPO") == kinds.count("grpo") and notes.count("SFT warm-start") == kinds.count("sft")
    if "sft" in kinds:  # the weak base gave no signal on this machine, so the warm-start ran
        assert "probe after the warm-start" in browser.find_element("id", "probe-after").text
        assert "measured all-fail share per GRPO phase" in browser.find_element("id", "phase-all-fail").text
        gap = run.alerts.filter(pl.col("kind") == "signal_gap").sort("onset").row(0, named=True)
        wait_for(browser, lambda: "signal_gap" in browser.find_element("id", ids.ALERTS).text, what="gap alert")
        assert gap["state"].upper() in browser.find_element("id", ids.ALERTS).text


def test_vlm_completions_show_their_image(served, browser, cache_dir):
    """A few GRPO steps of the tiny VLM on rendered images; the completions browser shows each sampled
    completion's image beside it, served from inside the run. GRPO_DIAG_SCREENSHOTS=DIR keeps a picture
    (docs/screenshots/vlm-completions.png was made so)."""
    import os
    from dataclasses import replace
    from pathlib import Path

    from training.config import load
    from training.grpo import build_trainer

    root, base = served
    cfg = load("training/configs/vlm/grpo.toml")
    cfg = replace(cfg, task=replace(cfg.task, n_train=100, n_eval=12), grpo=replace(cfg.grpo, steps=2),
                  heldout=replace(cfg.heldout, every=2))
    build_trainer(cfg, str(root)).train()
    browser.get(base + f"/run/{cfg.name}")
    wait_for(browser, lambda: len(browser.find_elements("css selector", f"#{ids.COMPLETIONS} img")) > 0, what="thumbnails")
    loaded = ("return Array.from(document.querySelectorAll('#" + ids.COMPLETIONS + " img'))"
              ".map(i => [i.complete && i.naturalWidth, i.getAttribute('src')])")
    wait_for(browser, lambda: all(w for w, _ in js(browser, loaded)), what="thumbnails loaded")
    for width, src in js(browser, loaded):
        assert width == 56 and src.startswith(f"/image/{cfg.name}/") and src.endswith(".png")
    # the prompt column keeps its text (the image named by its content hash), never markup
    assert "<image:" in browser.find_element("id", ids.COMPLETIONS).text
    # both held-out sets drawn
    names = js(browser, f"return document.getElementById('{ids.FIG_REWARD_ACC}').querySelector('.js-plotly-plot')"
                        ".data.map(t => t.name)")
    # the set the verdict judges (the first, the one the run trains for) is named so in the legend
    assert "held-out accuracy (heldout, judged)" in names and "held-out accuracy (digits-text)" in names
    out = os.environ.get("GRPO_DIAG_SCREENSHOTS")
    if out:
        table = browser.find_element("id", ids.COMPLETIONS)
        browser.execute_script("arguments[0].scrollIntoView()", table)
        table.screenshot(str(Path(out) / "vlm-completions.png"))


def test_a_watched_verl_run_shows_running_then_finished(served, browser, tmp_path):
    """`grpo-diag watch` following verl 0.9's own dumps (the committed fixtures, replayed step by step by a
    writer process): the run page says `running` while the writer writes, then `finished` once the last
    step (`total_steps`) is in, without a reload; the figures grow meanwhile."""
    import os
    import subprocess
    import sys
    import threading

    from diag.monitor import MonitorConfig
    from diag.watch import WatchOptions, follower_for
    from tests.test_watch import FIXTURES, REPLAY

    root, base = served
    out = tmp_path / "verl"
    last = max(int(f.stem) for f in (FIXTURES / "v1" / "rollout").glob("*.jsonl"))
    writer = subprocess.Popen([sys.executable, "-c", REPLAY, str(FIXTURES / "v1"), str(out), "0.4"])
    while not (out / "rollout").exists():
        time.sleep(0.02)
    opts = WatchOptions(fmt="verl-rollouts", name="watched", root=str(root), interval=0.1, idle=60.0, total_steps=last,
                        import_options={"validation_dir": str(out / "validation"), "metrics": str(out / "metrics.jsonl")},
                        monitor=MonitorConfig(console=False))
    follower = follower_for(out / "rollout", opts, out=open(os.devnull, "w"))
    status = {}
    t = threading.Thread(target=lambda: status.setdefault("end", follower.run()))
    t.start()
    try:
        wait_for(browser, lambda: (root / "watched" / "run.json").is_file(), what="the watched run's store")
        browser.get(base + "/run/watched")
        header = lambda: browser.find_element("id", ids.RUN_HEADER).text  # noqa: E731
        wait_for(browser, lambda: "status: running" in header(), what="status running")
        js(browser, "window.__marker = 7")  # survives only if the page is not reloaded
        xmax = (f"return Math.max(...Array.from(document.getElementById('{ids.FIG_REWARD_ACC}')"
                ".querySelector('.js-plotly-plot')._fullData[0].x))")
        first = wait_for(browser, lambda: js(browser, xmax), what="first steps drawn")
        assert writer.wait(timeout=60) == 0
        t.join(timeout=60)
        assert status.get("end") == "finished"
        wait_for(browser, lambda: "status: finished" in header(), timeout=15, what="status finished")
        assert js(browser, xmax) == last > first
        assert js(browser, "return window.__marker") == 7
    finally:
        writer.kill()
        t.join(timeout=10)


# What every graph on a run page must be: each visible y axis carries a trace with data, each hidden
# one a note saying what is missing; alert markers' boxes never overlap. Returns the problems found.
CHART_CHECK = """
const out = {problems: [], notes: 0, markers: 0};
for (const id of arguments[0]) {
  const gd = document.getElementById(id).querySelector('.js-plotly-plot');
  if (!gd || !gd._fullLayout) { out.problems.push(id + ': not drawn'); continue; }
  const fl = gd._fullLayout, anns = fl.annotations || [];
  const notes = anns.filter(a => a.name === 'missing-note');
  out.notes += notes.length;
  for (const key of Object.keys(fl).filter(k => /^yaxis\\d*$/.test(k))) {
    const ref = 'y' + key.slice(5);
    const withData = gd._fullData.filter(t => (t.yaxis || 'y') === ref && t.visible !== false &&
      ((t.y && t.y.length) || (t.z && t.z.length)));
    if (fl[key].visible && !withData.length) out.problems.push(id + ': ' + key + ' drawn as empty axes');
    if (!fl[key].visible && !notes.length) out.problems.push(id + ': ' + key + ' hidden without a note');
  }
  const boxes = Array.from(gd.querySelectorAll('g.annotation'))
    .filter(g => (anns[+g.getAttribute('data-index')] || {}).name === 'alert-marker')
    .map(g => g.querySelector('rect.bg') || g).map(e => e.getBoundingClientRect());
  out.markers += boxes.length;
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 &&
        Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5) out.problems.push(id + ': alert markers overlap');
  }
}
return out;
"""
GRAPHS = [ids.FIG_REWARD_ACC, ids.FIG_SIGNAL, ids.FIG_ADV, ids.FIG_HEATMAP, ids.FIG_LENGTH, ids.FIG_BUCKETS]


def _page_problems(browser, base, name):
    browser.get(base + "/run/" + name)
    wait_for(browser, lambda: js(browser, "return document.querySelectorAll('.js-plotly-plot').length") >= 6,
             what=f"graphs of {name}")
    # the header comes with the figures, from one callback: once it names the run, they are this run's
    wait_for(browser, lambda: f"Run {name}" in browser.find_element("id", ids.RUN_HEADER).text, what=f"{name} drawn")
    last = {}

    def settled():  # plotly draws after the callback returns: the check holds once drawing is done
        last.update(browser.execute_script(CHART_CHECK, GRAPHS))
        return not last["problems"]
    try:
        wait_for(browser, settled, timeout=10, what="charts drawn")
    except AssertionError:
        pass
    return last


def test_imported_runs_of_every_format_explain_what_they_lack(served, browser):
    """One real run of each format in ../shared/real_logs (and verl's own rollout dumps), imported and
    opened in Chromium: no chart is drawn as empty axes, every series the log lacks is explained in text
    (as many notes as diag.missing gives), and no two alert markers overlap."""
    import tomllib
    from pathlib import Path

    from diag import missing
    from diag.importers import import_log

    from tests.conftest import real_logs_dir

    logs = real_logs_dir()
    root, base = served
    labels = tomllib.loads((Path(__file__).parents[1] / "benchmarks" / "real_runs" / "labels.toml").read_text())["run"]
    picked, seen = [], set()
    for e in labels:  # the first labelled run of each format (and profile), then the family with four sets
        key = (e.get("format"), e.get("profile"))
        if key not in seen:
            seen.add(key)
            picked.append(e)
    picked += [e for e in labels if e["name"] == "vlmexp-s1-e1-grpo" and e not in picked]
    names = []
    for e in picked:
        import_log(logs / e["path"], fmt=e.get("format", "auto"), name=e["name"], root=str(root),
                   profile=e.get("profile"), eval_size=e.get("eval_size"))
        names.append(e["name"])
    fix = Path(__file__).parent / "fixtures" / "verl" / "v1"
    import_log(fix / "rollout", root=str(root), name="verl-rollouts", validation_dir=str(fix / "validation"),
               metrics=str(fix / "metrics.jsonl"))
    names.append("verl-rollouts")
    assert len({e.get("format") for e in picked}) >= 5
    explained = 0
    for name in names:
        run = diag.open_run(root / name)
        want = missing.notes(run.steps, run.groups, run.evals, run.meta)
        got = _page_problems(browser, base, name)
        assert not got["problems"], (name, got["problems"])
        assert got["notes"] == len(want), (name, got["notes"], want)
        assert f"imported from {run.meta['format']}" in browser.find_element("id", ids.RUN_HEADER).text
        explained += len(want)
    assert explained > 0  # the console logs lack per-group data: said, not drawn


def test_many_alerts_get_numbered_markers_that_never_overlap(served, browser):
    """A run page with a crowd of alerts (40 onsets, some a step apart): every alert keeps a numbered
    marker (alone or shared: "3,4"), the numbers match the alert list, and no two boxes overlap."""
    from diag import figures

    findings = [{"kind": "decoupling", "severity": ("warning", "critical")[i % 2], "state": ("firing", "resolved")[i % 3 == 0],
                 "onset": int(o), "step": int(o) + 5, "window_start": int(o), "window_end": int(o) + 5,
                 "resolved_step": int(o) + 9, "evidence": {}}
                for i, o in enumerate(sorted(np.random.default_rng(3).integers(1, 200, 40)))]
    steps = diag.schema.conform("steps", [{"step": s, "reward_mean": 0.5} for s in range(1, 201)])
    fig = figures.reward_vs_accuracy(steps, diag.schema.empty("evals"), ["r"], findings)
    texts = [a.text for a in fig.layout.annotations if a.name == "alert-marker"]
    numbers = sorted(int(t) for text in texts for t in text.split(","))
    assert numbers == list(range(1, 41))
    root, base = served
    page = root / "crowd.html"
    page.write_text(fig.to_html(include_plotlyjs=True, div_id=ids.FIG_REWARD_ACC))
    browser.get(page.as_uri())
    wait_for(browser, lambda: js(browser, "return !!document.querySelector('.js-plotly-plot')._fullLayout"), what="figure")
    got = browser.execute_script(CHART_CHECK.replace("document.getElementById(id).querySelector('.js-plotly-plot')",
                                                     "document.querySelector('.js-plotly-plot')"), ["only"])
    assert got["markers"] == len(texts) and not [p for p in got["problems"] if "overlap" in p], got["problems"]


def test_clicking_an_alert_scrolls_to_its_window_on_the_chart(served, browser):
    """A numbered alert clicked in the list: the page scrolls to the reward chart and shades that alert's
    window there; its number is the one on the chart's marker."""
    from pathlib import Path

    from diag.importers import import_log

    root, base = served
    fix = Path(__file__).parent / "fixtures" / "verl" / "v1"
    import_log(fix / "rollout", root=str(root), name="alerted", validation_dir=str(fix / "validation"),
               metrics=str(fix / "metrics.jsonl"))
    browser.get(base + "/run/alerted")
    summary = wait_for(browser, lambda: browser.find_element("css selector", f"#{ids.ALERTS} summary"), what="alert list")
    assert summary.text.startswith("#1 ")
    marker = js(browser, f"return document.getElementById('{ids.FIG_REWARD_ACC}').querySelector('.js-plotly-plot')"
                         ".layout.annotations.filter(a => a.name === 'alert-marker').map(a => a.text)")
    assert any("1" in m.split(",") for m in marker)
    js(browser, "window.scrollTo(0, document.body.scrollHeight)")
    summary.click()
    focus = (f"return (document.getElementById('{ids.FIG_REWARD_ACC}').querySelector('.js-plotly-plot').layout.shapes"
             " || []).filter(s => s.name === 'alert-focus').map(s => [s.x0, s.x1])")
    shaded = wait_for(browser, lambda: js(browser, focus), what="the alert's window shaded")
    assert len(shaded) == 1 and shaded[0][0] < shaded[0][1]
    top = js(browser, f"return document.getElementById('{ids.FIG_REWARD_ACC}').getBoundingClientRect().top")
    assert abs(top) < 50, "the reward chart was not scrolled into view"


def test_a_firing_reward_truth_alert_shows_how_the_reward_is_gamed(demo_runs, served, browser):
    """The deceptive run's page: opening the firing alert (one click on its numbered box) shows the patterns of
    the paid-untrue completions, their share over the run and examples, as text."""
    root, base = served
    shutil.copytree(demo_runs / "deceptive-reward", root / "deceptive-reward")
    browser.get(base + "/run/deceptive-reward")
    wait_for(browser, lambda: browser.find_elements("css selector", f"#{ids.ALERTS} .gamed-patterns"), timeout=60,
             what="patterns panel")
    panel = browser.find_element("css selector", f"#{ids.ALERTS} .gamed-patterns")
    assert not panel.is_displayed()  # inside the closed alert
    details = panel.find_element("xpath", "ancestor::details")
    details.find_element("css selector", "summary").click()
    wait_for(browser, lambda: panel.is_displayed(), what="the alert opened")
    text = panel.text
    assert "How the reward is being gamed" in text and "paid-untrue completions:" in text
    assert "share over the run:" in text and "length" in text and "->" in text
    assert not panel.find_elements("css selector", "script, img")  # examples are text


def test_the_runs_page_filters_a_sweep_by_verdict_and_compare_picks_by_verdict(served, browser):
    """A sweep checked with `grpo-diag check FOLDER`: the runs page lists it worst first from the cards, the
    verdict filter keeps the decoupled run alone, and the compare page's verdict picker selects the clean runs."""
    from selenium.webdriver.common.by import By

    from benchmarks.judge import write_run
    from diag.cli import main

    root, base = served
    write_run(str(root), "falls", 300, seed=0, falls=True)
    for i in range(2):
        write_run(str(root), f"flat-{i}", 300, seed=i + 1)
    assert main(["check", str(root), "--jobs", "1"]) == 1
    browser.get(base + "/")
    table = lambda: browser.find_element("id", ids.RUNS_TABLE).text  # noqa: E731
    wait_for(browser, lambda: "flat-1" in table() and "decoupled" in table(), what="runs table with verdicts")
    assert table().index("falls") < table().index("flat-0")  # worst first

    def choose(dropdown: str, value: str) -> None:
        browser.find_element("id", dropdown).click()  # Dash 4: a button opening a list of options
        wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, f"#{dropdown} input[value='{value}'], "
                                                                         f"input[value='{value}']"), what="options")
        option = browser.find_element(By.CSS_SELECTOR, f"input[value='{value}']")
        option.find_element(By.XPATH, "ancestor::label").click()

    choose(ids.RUNS_VERDICT, "decoupled")
    wait_for(browser, lambda: "flat-0" not in table() and "falls" in table(), what="the table filtered by verdict")

    browser.get(base + "/compare")
    wait_for(browser, lambda: browser.find_elements("id", ids.COMPARE_VERDICT), what="the verdict picker")
    choose(ids.COMPARE_VERDICT, "clean")
    names = lambda: js(browser, f"return document.getElementById('{ids.FIG_COMPARE}')"  # noqa: E731
                                ".querySelector('.js-plotly-plot').data.map(t => t.name).join(' ')")
    wait_for(browser, lambda: "flat-0" in names() and "flat-1" in names() and "falls" not in names(),
             what="the compare figure with the clean runs")
