"""Pre-flight signal probe: will GRPO get any signal from this model on this task?

From k sampled completions per prompt (c of them correct) it estimates, for each group size G, the
share of groups that would carry no signal (all wrong or all right). The per-prompt estimate
[C(c,G) + C(k-c,G)] / C(k,G) is unbiased for k >= G; the plug-in p^G + (1-p)^G with p = c/k is biased
upward (p^G from 16 samples overestimates) and is used only where G > k, and labelled so.
Pure functions: the sampling itself lives with the training code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import comb

import numpy as np

GROUP_SIZES = (2, 4, 8, 16, 32)


def dead_share_unbiased(c: int, k: int, G: int) -> float:
    if G > k:
        raise ValueError(f"the unbiased estimate needs k >= G (k={k}, G={G})")
    return (comb(c, G) + comb(k - c, G)) / comb(k, G)


def dead_share_plugin(c: int, k: int, G: int) -> float:
    p = c / k
    return p**G + (1 - p) ** G


def all_fail_share(c: int, k: int, G: int) -> float:
    return comb(k - c, G) / comb(k, G) if G <= k else (1 - c / k) ** G


@dataclass
class ProbeResult:
    model: str
    task: str
    k: int
    n_prompts: int
    current_G: int
    pass_rates: list[float]
    mean_pass_rate: float
    share_never_solved: float  # prompts with 0 of k correct
    share_always_solved: float  # prompts with k of k correct
    dead_share: dict[int, float]  # G -> predicted share of zero-signal groups
    all_fail_share: dict[int, float]
    method: dict[int, str]  # G -> "unbiased" | "plug-in (biased upward, G > k)"
    recommendation: str
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dead_share"] = {str(g): v for g, v in self.dead_share.items()}
        d["all_fail_share"] = {str(g): v for g, v in self.all_fail_share.items()}
        d["method"] = {str(g): v for g, v in self.method.items()}
        return d


def analyse(correct: list[list[bool]], model: str, task: str, current_G: int = 8,
            group_sizes: tuple[int, ...] = GROUP_SIZES) -> ProbeResult:
    """correct: per prompt, k booleans (one per sampled completion)."""
    if not correct:
        raise ValueError("the probe needs at least one prompt")
    k = len(correct[0])
    if k < 2 or any(len(c) != k for c in correct):
        raise ValueError("every prompt needs the same number k >= 2 of sampled completions")
    counts = np.array([int(sum(c)) for c in correct])
    dead, fail, method = {}, {}, {}
    for G in sorted(set(group_sizes) | {current_G}):
        if G <= k:
            dead[G] = float(np.mean([dead_share_unbiased(int(c), k, G) for c in counts]))
            method[G] = "unbiased"
        else:
            dead[G] = float(np.mean([dead_share_plugin(int(c), k, G) for c in counts]))
            method[G] = "plug-in (biased upward, G > k)"
        fail[G] = float(np.mean([all_fail_share(int(c), k, G) for c in counts]))
    rates = (counts / k).tolist()
    res = ProbeResult(model=model, task=task, k=k, n_prompts=len(counts), current_G=current_G, pass_rates=rates,
                      mean_pass_rate=float(np.mean(rates)), share_never_solved=float(np.mean(counts == 0)),
                      share_always_solved=float(np.mean(counts == k)), dead_share=dead, all_fail_share=fail,
                      method=method, recommendation="", reasons=[])
    res.recommendation, res.reasons = recommend(res)
    return res


def predicts_gap(r: ProbeResult | dict) -> bool:
    """Most groups at the current G would be all-wrong, and many prompts are never solved: GRPO alone is
    predicted to get no signal (the case for an SFT warm-start). Reads a result or its stored dict."""
    d = r.to_dict() if isinstance(r, ProbeResult) else r
    G = str(d["current_G"])
    return d["all_fail_share"][G] >= 0.5 and d["share_never_solved"] >= 0.4


def recommend(r: ProbeResult) -> tuple[str, list[str]]:
    """One recommendation with the numbers behind it."""
    G = r.current_G
    d, f = r.dead_share[G], r.all_fail_share[G]
    larger = [g for g in sorted(r.dead_share) if g > G]
    best_larger = min(larger, key=lambda g: r.dead_share[g]) if larger else None
    why = [f"mean pass rate {r.mean_pass_rate:.3f} over {r.n_prompts} prompts x {r.k} samples",
           f"predicted zero-signal share at G={G}: {d:.2f} (all-fail {f:.2f})",
           f"prompts never solved: {r.share_never_solved:.2f}; always solved: {r.share_always_solved:.2f}"]
    if best_larger is not None:
        why.append(f"at G={best_larger}: {r.dead_share[best_larger]:.2f} ({r.method[best_larger]})")
    if predicts_gap(r):
        return ("SFT warm-start first: most groups would be all-wrong, so GRPO would get no advantage from "
                "them; supervised fine-tuning on this task elicits the skill more reliably on a weak model", why)
    if d >= 0.3 and best_larger is not None and d - r.dead_share[best_larger] >= 0.1:
        return (f"use a larger group: G={best_larger} cuts the zero-signal share from {d:.2f} to "
                f"{r.dead_share[best_larger]:.2f}", why)
    if d >= 0.3:
        return ("filter prompts by difficulty: drop those never or always solved in the probe "
                f"({r.share_never_solved + r.share_always_solved:.2f} of prompts)", why)
    return ("go ahead: most groups will carry signal", why)
