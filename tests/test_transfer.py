"""The transfer/forgetting finding across held-out sets. Labels were written before the detector ran:
  forgets:  trained set 0.30 -> 0.80 while the other set 0.70 -> 0.30 on the same 100 items -> fires,
            naming both sets;
  transfers: trained 0.30 -> 0.80, other 0.70 -> 0.72 -> quiet;
  noise:    trained 0.30 -> 0.80, other 0.70 -> 0.66 (within noise and under min_drop) -> quiet;
  one set:  nothing to compare -> quiet;
  trained flat: other falls but the trained set did not rise -> quiet (a decline, not a trade-off)."""

import numpy as np
import pytest

import diag
from diag.detect import detect_all
from diag.detect.transfer import detect_transfer


def _items(p: float, n: int, rng) -> list[bool]:
    k = int(round(p * n))
    out = [True] * k + [False] * (n - k)
    rng.shuffle(out)
    return out


def _run(root, name, trained, other, n=100):
    rng = np.random.default_rng(0)
    rec = diag.Recorder(str(root), name, ["r"], group_size=4, flush_secs=0,
                        meta={"heldout": {"name": "image"}})
    steps = [0, 10, 20, 30]
    for s, (t, o) in zip(steps, zip(np.linspace(*trained, 4), np.linspace(*other, 4))):
        rec.log_eval(s, "image", _items(t, n, rng))
        if other is not None:
            rec.log_eval(s, "text", _items(o, n, rng))
    rec.close()
    return diag.open_run(root / name)


@pytest.mark.parametrize("name,trained,other,fires", [
    ("forgets", (0.3, 0.8), (0.7, 0.3), True),
    ("transfers", (0.3, 0.8), (0.7, 0.72), False),
    ("noise", (0.3, 0.8), (0.7, 0.66), False),
    ("trained-flat", (0.3, 0.3), (0.7, 0.3), False),
])
def test_forgetting_fires_only_on_a_trade_off(tmp_path, name, trained, other, fires):
    run = _run(tmp_path, name, trained, other)
    found = [f for f in detect_all(run) if f.kind == "forgetting"]
    assert bool(found) == fires
    if fires:
        f = found[0]
        assert f.evidence["trained"] == "image" and f.evidence["other"] == "text"
        assert "'image'" in f.message and "'text'" in f.message and f.severity == "warning"
        assert f.evidence["other_accuracy"] == pytest.approx([0.7, 0.3])


def test_one_set_gives_no_transfer_finding(tmp_path):
    rec = diag.Recorder(str(tmp_path), "one", ["r"], group_size=4, flush_secs=0)
    for s in (0, 10):
        rec.log_eval(s, "heldout", [True, False] * 10)
    rec.close()
    run = diag.open_run(tmp_path / "one")
    assert detect_transfer(run.evals, run.eval_items) == []


@pytest.mark.slow
@pytest.mark.xdist_group("trl")
def test_real_sft_runs_one_built_to_forget(tmp_path, cache_dir):
    """Labels written before the detector ran on these runs (both from the shipped strong add2 base, 300
    SFT steps, evaluated on their task and on one more set):
      mul-forgets-add2: SFT on multiplication, also add2 -> FIRES: a tiny model trained on a new format
                        loses the old one (measured here: mul 0.00 -> 0.14, add2 0.69 -> 0.00);
      add2-keeps-add1:  SFT on add2 itself, also add1 -> QUIET: no new skill traded for an old one."""
    import polars as pl

    from training.config import from_dict
    from training.launch import launch

    def run(name, task, also):
        cfg = from_dict({"name": name, "kind": "sft", "model": {"path": "base:strong"},
                         "task": {"name": task, "n_train": 4000, "n_eval": 200},
                         "sft": {"steps": 300, "eval_every": 100}, "heldout": {"also": [also]}})
        return diag.open_run(launch(cfg, str(tmp_path)))

    forgets = run("mul-forgets-add2", "mul", "add2")
    found = [f for f in detect_all(forgets) if f.kind == "forgetting"]
    assert len(found) == 1 and found[0].evidence["trained"] == "heldout" and found[0].evidence["other"] == "add2"
    acc = forgets.evals.filter((pl.col("metric") == "accuracy") & (pl.col("bucket") == "all"))
    assert set(acc["eval_set"]) == {"heldout", "add2"}  # both curves recorded at every evaluation
    keeps = run("add2-keeps-add1", "add2", "add1")
    assert not [f for f in detect_all(keeps) if f.kind == "forgetting"]


def test_evaluations_without_a_value_are_left_out_not_a_crash(tmp_path):
    """An imported log can record an evaluation with no number: the check still gives its verdict."""
    rec = diag.Recorder(str(tmp_path), "gaps", ["r"], group_size=4, flush_secs=0)
    for s, a, b in ((0, 0.3, 0.7), (10, None, float("nan")), (20, 0.8, 0.7), (30, 0.8, None)):
        rec.log_eval_value(s, "heldout", a, n=100)
        rec.log_eval_value(s, "other", b, n=100)
    rec.close()
    run = diag.open_run(tmp_path / "gaps")
    assert detect_transfer(run.evals, run.eval_items) == []  # 0.7 -> 0.7: nothing lost
    assert isinstance(detect_all(run), list)
