"""The Run page's figures on the demo runs, read as JSON: axes a reader can trust, every series with
data, each alert listed once with its state and its onset marked on every step-axis chart."""

import re

import numpy as np
import pytest

from dashboards import query
from dashboards.pages import run as run_page

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]

RUNS = ("strong-healthy", "weak-signal-gap", "deceptive-reward")


def _axis_range(fig, name):
    r = fig.layout[name].range
    return None if r is None else list(r)


def _text(component) -> str:
    """All text of a Dash component tree."""
    if isinstance(component, str):
        return component
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    children = getattr(component, "children", None)
    return "" if children is None else _text(children)


@pytest.mark.parametrize("name", RUNS)
def test_run_page_figures_tell_the_truth(demo_runs, name):
    store = query.Store(demo_runs)
    out = run_page.render(store, name, -1)
    reward_acc, signal, adv, heat, length, buckets = out["figs"]
    for fig in out["figs"]:
        assert fig.data, fig.layout.title.text
        for t in fig.data:
            n = len(t.z) if t.type == "heatmap" else len(t.x)
            assert n > 0, f"{fig.layout.title.text}: series {t.name!r} is empty"
            assert t.type != "scattergl"  # SVG: WebGL runs on software rendering in GPU-less browsers
    # held-out accuracy: a [0, 1] axis of its own (the second panel), never a free secondary axis
    acc = next(t for t in reward_acc.data if t.name == "held-out accuracy")
    assert acc.yaxis == "y2" and _axis_range(reward_acc, "yaxis2") == [0, 1]
    assert all(t.yaxis == "y" for t in reward_acc.data if t.name.startswith("reward"))
    assert 0 <= np.nanmin(acc.y) and np.nanmax(acc.y) <= 1
    # every share on [0, 1]
    assert _axis_range(signal, "yaxis") == [0, 1]
    assert _axis_range(length, "yaxis2") == [0, 1]
    assert _axis_range(buckets, "yaxis") == [0, 1]
    for t in signal.data:
        assert 0 <= np.nanmin(t.y) and np.nanmax(t.y) <= 1 + 1e-9
    # advantage variance and effective batch each in a panel of its own
    assert {t.yaxis for t in adv.data} == {"y", "y2"}
    # each alert once, with its state; its onset on every chart with a step axis
    findings = [f for f in store.findings(name) if f["severity"] != "info"]
    text = _text(out["alerts"])
    for f in findings:
        assert len(re.findall(rf"\b{f['kind']}: (FIRING|RESOLVED)[^)]*onset step {f['onset']}\b", text)) == 1
        for fig in (reward_acc, signal, adv, heat, length):
            xs = {float(x) for s in fig.layout.shapes if s.type == "path" for x in re.findall(r"M([-\d.]+),0 V1", s.path)}
            assert f["onset"] in xs, f"{f['kind']} onset not marked on {fig.layout.title.text}"


def test_model_is_named_not_a_path(demo_runs):
    store = query.Store(demo_runs)
    out = run_page.render(store, "strong-healthy", -1)
    shown = _text(out["header"])
    run = store.get("strong-healthy").run
    assert query.model_label(run.meta["model"]) in shown
    assert query.model_label("/root/.cache/grpo-diag/smollm2-135m") == "smollm2-135m"
    assert query.model_label("runs/b-sft/checkpoint") == "b-sft/checkpoint"
    assert query.model_label("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
