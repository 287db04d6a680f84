"""Transfer and forgetting across held-out sets: the trained set rises while another falls.

A run evaluated on several held-out sets (the training task's own, "heldout" or the first recorded, and
others: the other modality, out-of-domain items) can improve on what it trains and lose what it knew
elsewhere. The finding fires when, between the first and the last evaluation both sets share, the
trained set's accuracy rose and another set's fell at least `min_drop` below its start, each judged
paired on items (exact McNemar on the items that changed) where item results exist, else by a two-
proportion test. It names both sets and their numbers; a single-set run gets nothing from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from diag.detect.base import Finding
from diag.stats import mcnemar, two_proportion_p


@dataclass(frozen=True)
class TransferParams:
    alpha: float = 0.05  # one-sided significance of the rise and of the fall
    min_drop: float = 0.05  # absolute accuracy the other set must lose below its start


def _acc(evals: pl.DataFrame) -> pl.DataFrame:
    # an imported log may hold an evaluation without a value: it cannot be compared, so it is not
    return (evals.filter((pl.col("metric") == "accuracy") & (pl.col("bucket") == "all")
                         & pl.col("value").is_not_null() & pl.col("value").is_not_nan())
            .unique(["eval_set", "step"], keep="first", maintain_order=True))


def _change(items: pl.DataFrame, acc: pl.DataFrame, name: str, s0: int, s1: int) -> tuple[float, float, int, float, float]:
    """(accuracy at s0, at s1, items, one-sided p of a rise, one-sided p of a fall)."""
    def at(step):
        return acc.filter((pl.col("eval_set") == name) & (pl.col("step") == step)).row(0, named=True)

    a0, a1 = at(s0), at(s1)
    it = items.filter(pl.col("eval_set") == name) if items.height else items
    x0 = it.filter(pl.col("step") == s0).sort("item") if it.height else it
    x1 = it.filter(pl.col("step") == s1).sort("item") if it.height else it
    if x0.height and x0.height == x1.height and x0["item"].to_list() == x1["item"].to_list():
        before, after = x0["correct"].to_numpy().astype(bool), x1["correct"].to_numpy().astype(bool)
        lost, gained, _ = mcnemar(before, after)  # right only before, right only after
        from scipy.stats import binomtest

        m = lost + gained
        up = 1.0 if m == 0 else float(binomtest(gained, m, 0.5, alternative="greater").pvalue)
        down = 1.0 if m == 0 else float(binomtest(lost, m, 0.5, alternative="greater").pvalue)
        return float(before.mean()), float(after.mean()), len(before), up, down
    n0, n1 = int(a0["n"] or 0), int(a1["n"] or 0)
    p = two_proportion_p(float(a0["value"]), n0, float(a1["value"]), n1) / 2  # one-sided
    rising = a1["value"] > a0["value"]
    return float(a0["value"]), float(a1["value"]), min(n0, n1), (p if rising else 1 - p), (1 - p if rising else p)


def detect_transfer(evals: pl.DataFrame, eval_items: pl.DataFrame, trained: str | None = None,
                    params: TransferParams | None = None) -> list[Finding]:
    p = params or TransferParams()
    acc = _acc(evals) if evals.height else evals
    sets = list(dict.fromkeys(acc["eval_set"].to_list())) if acc.height else []
    if len(sets) < 2:
        return []
    trained = trained if trained in sets else sets[0]
    out = []
    steps_t = set(acc.filter(pl.col("eval_set") == trained)["step"].to_list())
    for other in sets:
        if other == trained:
            continue
        common = sorted(steps_t & set(acc.filter(pl.col("eval_set") == other)["step"].to_list()))
        if len(common) < 2:
            continue
        s0, s1 = common[0], common[-1]
        t0, t1, nt, t_up, _ = _change(eval_items, acc, trained, s0, s1)
        o0, o1, no, _, o_down = _change(eval_items, acc, other, s0, s1)
        if not (t1 > t0 and t_up < p.alpha and o0 - o1 >= p.min_drop and o_down < p.alpha):
            continue
        series = acc.filter((pl.col("eval_set") == other) & pl.col("step").is_in(common)).sort("step")
        below = series.filter(pl.col("value") <= o0 - p.min_drop)
        onset = int(below["step"][0]) if below.height else s1
        out.append(Finding(
            kind="forgetting", severity="warning", step=s1, onset=onset, window_start=s0, window_end=s1,
            message=(f"Forgetting: training raised '{trained}' from {t0:.3f} to {t1:.3f} (p={t_up:.3g}, {nt} items) "
                     f"while '{other}' fell from {o0:.3f} to {o1:.3f} (p={o_down:.3g}, {no} items, paired on items "
                     f"where recorded), steps {s0} to {s1}. What the run learns on '{trained}' does not transfer to "
                     f"'{other}' and costs what the model knew there."),
            evidence={"trained": trained, "other": other, "steps": [s0, s1], "trained_accuracy": [t0, t1],
                      "other_accuracy": [o0, o1], "p_rise": t_up, "p_fall": o_down, "items": [nt, no],
                      "min_drop": p.min_drop, "alpha": p.alpha},
        ))
    return out
