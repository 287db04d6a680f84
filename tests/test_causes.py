"""The cause next to the symptom: findings from the trainer's own scalars (diag.detect.causes)."""

import numpy as np
import polars as pl

from diag.detect.base import Finding
from diag.detect.causes import cite, detect_causes


def _steps(n=200, **cols):
    return pl.DataFrame({"step": np.arange(1, n + 1), **{k: np.asarray(v, float) for k, v in cols.items()}})


def test_each_cause_is_found_with_its_numbers_and_is_never_an_alert():
    rng = np.random.default_rng(0)
    t = np.arange(200)
    steps = _steps(
        len_mean=np.where(t < 120, 220.0, 600.0) + rng.normal(0, 5, 200),
        frac_clipped=np.where(t < 120, 0.0, 0.5),
        entropy=np.linspace(0.5, 0.05, 200),
        grad_norm=np.where(t % 5 == 0, 0.0, 0.3),
        kl=np.linspace(0.01, 0.5, 200),
    )
    found = {f.kind: f for f in detect_causes(steps)}
    assert set(found) == {"length_blowup", "clipped_jump", "entropy_collapse", "zero_grad", "kl_growth"}
    assert all(f.severity == "info" and not f.is_alert for f in found.values())
    assert 110 <= found["length_blowup"].onset <= 135 and 550 < found["length_blowup"].evidence["peak"] < 650
    assert "0% -> 50%" in found["clipped_jump"].message
    assert found["zero_grad"].evidence["share"] == 0.2


def test_a_steady_run_has_no_cause_and_a_short_one_is_not_judged():
    rng = np.random.default_rng(1)
    steady = _steps(len_mean=300 + rng.normal(0, 10, 200), entropy=0.4 + rng.normal(0, 0.01, 200),
                    grad_norm=0.3 + rng.normal(0, 0.02, 200), kl=0.02 + rng.normal(0, 0.001, 200),
                    frac_clipped=np.full(200, 0.05))
    assert [f.kind for f in detect_causes(steady)] == []
    assert [f.kind for f in detect_causes(_steps(10, len_mean=np.r_[np.full(5, 10.0), np.full(5, 90.0)]))] == ["no_data"]


def test_missing_series_name_the_keys_that_would_enable_them():
    (nd,) = detect_causes(_steps(50, len_mean=np.full(50, 100.0)))
    assert nd.kind == "no_data" and "'entropy'" in nd.message and "'actor/entropy'" in nd.message
    assert "'grad_norm'" in nd.message and "'kl'" in nd.message


def test_a_long_collapse_under_an_overlong_penalty():
    t = np.arange(150)
    found = detect_causes(_steps(150, len_mean=np.where(t < 40, 8900.0, 5400.0)))
    assert "length_collapse" in {f.kind for f in found}


def test_cite_names_causes_in_the_window_and_keeps_the_resolution_last():
    cause = Finding(kind="length_blowup", severity="info", step=200, onset=160, window_start=160, window_end=200,
                    message="Mean completion length grew 220 -> 600 tokens.")
    firing = Finding(kind="decoupling", severity="critical", step=140, onset=50, window_start=40, window_end=140,
                     message="Held-out accuracy fell.")
    assert cite(firing, [cause]).evidence.get("causes") is None  # its window ends before the blow-up ...
    cited = cite(firing, [cause], last_step=210)  # ... unless it is still firing at the end
    assert cited.evidence["causes"] == ["length_blowup"] and "220 -> 600" in cited.message
    done = firing.resolve(190, "recovered")
    cited = cite(done, [cause])
    assert cited.message.index("220 -> 600") < cited.message.index("RESOLVED at step 190")
