"""Per-prompt history and the dead-prompt skip rule: hand-checked cases, properties, the page."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diag
from diag import prompts


def run_with(tmp_path, visits: dict[str, list[bool]], G: int = 4) -> diag.Run:
    """visits: prompt -> per-visit 'has a passing and a failing completion' (else all-fail).
    Step s trains the s-th visit of every prompt that has one."""
    rec = diag.Recorder(str(tmp_path), "p", ["r"], group_size=G, flush_secs=0)
    for step in range(1, max(len(v) for v in visits.values()) + 1):
        names = [p for p, v in visits.items() if len(v) >= step]
        rewards, texts = [], []
        for p in names:
            mixed = visits[p][step - 1]
            rewards += [1.0] + [0.0] * (G - 1) if mixed else [0.0] * G
            texts += [p] * G
        r = np.array(rewards)
        rec.log_batch(step, r, passed=r > 0.5, prompts=texts)
    rec.close()
    return diag.open_run(tmp_path / "p")


def test_history_table_and_skip_rule_by_hand(tmp_path):
    run = run_with(tmp_path, {
        "a": [False, False, False, False],  # dead throughout
        "b": [False, False, True, False],  # revived at visit 3, dead again at 4
        "c": [True, True],  # always live
    })
    h = prompts.history(run.groups)
    assert h.height == 10 and h.filter(pl.col("prompt") == "a")["visit"].to_list() == [1, 2, 3, 4]
    t = prompts.table(h).sort("prompt")
    assert t["dead_streak"].to_list() == [4, 1, 0]
    assert t["dead_visits"].to_list() == [4, 3, 0]
    assert t["revived"].to_list() == [False, True, False]
    assert t["last_pass_rate"].to_list() == [0.0, 0.0, 0.25]
    # k = 2: judged = visits 3 and 4 of a and b (c has only 2); a3 skip (dead), a4 skip (dead),
    # b3 skip (was live: a lost signal), b4 not skipped (b3 live)
    s = prompts.skip_rule(h, k=2)
    assert (s["judged"], s["skipped"], s["lost_signal"]) == (4, 3, 1)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["dead_share_judged"] == pytest.approx(3 / 4)  # a3, a4, b4 dead of the four judged
    assert s["completions_saved_share"] == pytest.approx(3 * 4 / (10 * 4))
    summary = prompts.summary(h, k=2)
    assert summary["prompts"] == 3 and summary["revived"] == 1
    assert summary["dead_now_share"] == pytest.approx(2 / 3) and summary["dead_2_in_a_row_share"] == pytest.approx(1 / 3)


def test_not_enough_visits_says_so(tmp_path):
    run = run_with(tmp_path, {"a": [False], "b": [True]})
    s = prompts.skip_rule(prompts.history(run.groups), k=2)
    assert s["enough_data"] is False and s["skipped"] == 0 and s["precision"] is None
    with pytest.raises(ValueError, match="k must be >= 1"):
        prompts.skip_rule(prompts.history(run.groups), k=0)
    empty = prompts.history(diag.open_run(tmp_path / "p").groups.clear())
    assert prompts.table(empty).height == 0 and prompts.summary(empty)["prompts"] == 0


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.lists(st.booleans(), min_size=1, max_size=6), min_size=1),
       st.integers(1, 4))
def test_invariants(tmp_path_factory, visits, k):
    run = run_with(tmp_path_factory.mktemp("prop"), visits)
    h = prompts.history(run.groups)
    t = prompts.table(h)
    assert t.height == len(visits)
    assert (t["dead_streak"] <= t["visits"]).all() and (t["dead_visits"] <= t["visits"]).all()
    assert (~t["revived"] | ((t["dead_visits"] >= 1) & (t["dead_streak"] < t["visits"]))).all()
    s = prompts.skip_rule(h, k)
    assert 0 <= s["skipped"] <= s["judged"] <= s["visits"] == h.height
    assert s["precision"] is None or 0 <= s["precision"] <= 1
    assert s["lost_signal"] == s["skipped"] - round((s["precision"] or 0) * s["skipped"])


def test_prompts_page(tmp_path):
    from dashboards import query
    from dashboards.app import create_app, page_for
    from dashboards.pages import prompts as page

    run_with(tmp_path, {"<b>a</b>": [False, False, False], "b": [True, False, False]})
    store = query.Store(tmp_path)
    assert "Prompts of run p" in str(page_for(store, "/run/p/prompts"))
    assert "Run not found" in str(page_for(store, "/run/nope/prompts"))
    summary, fig, rows = page.render(store, "p", 2)
    assert "2 prompts trained on" in str(summary) and "1 of 2 later visits" in str(summary)
    assert fig.data[0].y.tolist() == [0.5, 1.0, 1.0]
    assert rows[0]["prompt"] == "<b>a</b>"  # a DataTable cell: shown as text, never markup
    create_app(tmp_path)  # the page's callback registers alongside the others


def test_skip_rule_benchmark_on_verl_rollouts():
    """benchmarks/skip_rule.py on verl 0.9's own dumps, whose passing does not depend on the prompt: the rule's
    precision is the dead share of the visits it could act on, as docs/remedies.md says (within sampling
    noise of the skipped visits), and every count is consistent."""
    import math
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import skip_rule

    r = skip_rule.measure(2)
    assert 0 < r["skipped"] <= r["judged"] <= r["visits"]
    assert r["lost_signal"] == r["skipped"] - round(r["precision"] * r["skipped"])
    se = math.sqrt(r["dead_share_judged"] * (1 - r["dead_share_judged"]) / r["skipped"])
    assert abs(r["precision"] - r["dead_share_judged"]) < 3 * se
