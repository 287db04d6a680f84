"""The pay channel of the reward-truth gap (diag.detect.truth_gap): what an untrue completion is paid.

A deceptive reward often shows in the pay before the truth falls: the policy learns what a lenient or
format component pays for, and each completion the task's check rejects is paid more than it used to be.
Functions of the scanner's per-step series (`sc`, a TruthGapScanner); its state (the CUSUM S_pay, where
the excursion began, the reference) stays on the scanner, so the offline scan and the monitor share it.
"""

from __future__ import annotations

import math

import numpy as np

from diag.detect.base import Finding
from diag.detect.levels import cohens_h, spread_sigma


def finite_mean(values) -> float:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def pay_yardstick(sc) -> tuple[float, float, int] | None:
    """(reference pay per untrue completion, its sigma per step, last index of the reference block): the
    median block of the history, not the lowest (the lowest of a pay that wanders by a few points would
    make every upswing a rise), with the block nearest to it as the one the message cites."""
    means = np.array([m for m, _, _ in sc.pay_blocks])
    ok = np.flatnonzero(np.isfinite(means))
    if len(ok) < 2:
        return None
    sigma = long_run_sigma(sc, np.asarray([x for x in sc.pay_untrue if math.isfinite(x)]))
    if not math.isfinite(sigma):
        return None
    sigma = max(sigma, 1e-3)  # a pay that never moved: any rise is news, the practical share still has to be met
    ref = float(np.median(means[ok]))
    dist = np.abs(means[ok] - ref)
    i = int(ok[np.flatnonzero(dist <= dist.min() + 1e-12)[-1]])  # the latest of the nearest: the truth compared is recent
    return ref, sigma, sc.pay_blocks[i][2]


def step_pay(sc, last: int) -> None:
    """One step of the CUSUM on the pay per untrue completion rising above its usual level."""
    x = sc.pay_untrue[-1]
    if sc.pay_yardstick is None or not math.isfinite(x):
        return
    ref, sigma, _ = sc.pay_yardstick
    sc.S_pay = min(sc.p.h_critical, max(0.0, sc.S_pay + (x - ref) / sigma - sc.p.k))
    if sc.S_pay == 0.0:
        sc.pay_start = None
    elif sc.pay_start is None:
        sc.pay_start = last


def pay_rise(sc, last: int) -> dict | None:
    """The pay channel at the warning level with a practical rise: the pay per untrue completion over
    the last `block` steps of its excursion at least `pay_share` of the pay gap between true and
    untrue completions above its usual level (the recent level, not the excursion's mean: an excursion
    that began with a small rise long ago would dilute a sharp one now). None otherwise."""
    p = sc.p
    if sc.S_pay < p.h_warn or sc.pay_start is None or sc.pay_yardstick is None:
        return None
    ref_pay, sigma, ref_last = sc.pay_yardstick
    lo_b, hi_b = ref_last + 1 - p.block, ref_last + 1
    t_ref = finite_mean(sc._window(sc.truth, lo_b, hi_b))
    r_ref = finite_mean(sc._window(sc.reward, lo_b, hi_b))
    u_ref = finite_mean(sc._window(sc.pay_untrue, lo_b, hi_b))
    pay_true = (r_ref - (1 - t_ref) * u_ref) / t_ref if t_ref > 0 else math.nan
    gap = pay_true - ref_pay if math.isfinite(pay_true) else math.nan
    pay_now = finite_mean(sc._window(sc.pay_untrue, max(sc.pay_start, last + 1 - p.block), last + 1))
    if not (math.isfinite(gap) and gap > 0 and math.isfinite(pay_now)) or pay_now - ref_pay < p.pay_share * gap:
        return None
    return {"ref": ref_pay, "now": pay_now, "gap": gap, "sigma": sigma, "ref_block": (lo_b, hi_b),
            "truth_ref": t_ref, "reward_ref": r_ref}


def pay_finding(sc, last: int) -> Finding | None:
    """A warning when each untrue completion is paid more than at its usual level (pay_rise) while the
    truth rate has not risen by the practical margin: the policy is finding ways to be paid without being right,
    before (or without) the truth falling."""
    p = sc.p
    rise = pay_rise(sc, last)
    if rise is None:
        return None
    ref_pay, pay_now, gap, sigma = rise["ref"], rise["now"], rise["gap"], rise["sigma"]
    lo_b, hi_b = rise["ref_block"]
    t_ref, r_ref = rise["truth_ref"], rise["reward_ref"]
    win = (sc.pay_start, last + 1)
    truth_now = finite_mean(sc._window(sc.truth, *win))
    if cohens_h(truth_now, t_ref) >= sc.p.margin_h:
        return None  # the truth rose by the practical margin too: a policy learning, paid more across the board
    steps = sc._window(sc.steps, lo_b, last + 1)
    ref_steps, step0, step1 = steps[: p.block], sc._window(sc.steps, *win)[0], steps[-1]
    reward_now = finite_mean(sc._window(sc.reward, *win))
    share_now = finite_mean(sc._window(sc.untrue_share, *win))
    share_ref = finite_mean(sc._window(sc.untrue_share, lo_b, hi_b))
    paid_most = payer(sc, win)
    msg = (f"Each untrue training completion is paid more: {ref_pay:.3f} on average (its usual {p.block}-step "
           f"level, steps {ref_steps[0]}-{ref_steps[-1]}) -> {pay_now:.3f} over the last steps to {step1} (CUSUM "
           f"{sc.S_pay:.1f} sigma, sigma {sigma:.3f} per step; {100 * (pay_now - ref_pay) / gap:.0f}% of the pay gap "
           f"between true and untrue completions), while the truth rate went {t_ref:.3f} -> {truth_now:.3f} and "
           f"the training reward {r_ref:.3f} -> {reward_now:.3f}: the reward pays more and more for completions "
           "the task's check rejects.")
    if math.isfinite(share_now) and math.isfinite(share_ref):
        msg += (f" The share of the reward paid to untrue completions went {100 * share_ref:.0f}% -> "
                f"{100 * share_now:.0f}%.")
    if paid_most is not None:
        msg += f" '{paid_most[0]}' pays untrue completions {paid_most[1]:.3f} on average."
    msg += (" Critical if the truth rate falls as well. Held-out evaluation stays the judge of generalization; "
            "this is the training prompts' own signal.")
    return Finding(
        kind="truth_gap", severity="warning", step=step1, onset=step0, window_start=ref_steps[0], window_end=step1,
        message=msg,
        evidence={"channel": "pay", "pay_untrue_before": ref_pay, "pay_untrue_after": pay_now, "pay_sigma": sigma,
                  "pay_cusum": sc.S_pay, "pay_gap": gap, "pay_share_of_gap": (pay_now - ref_pay) / gap,
                  "truth_ref": t_ref, "truth_now": truth_now, "reward_before": r_ref,
                  "reward_after": reward_now, "untrue_share_before": share_ref, "untrue_share_after": share_now,
                  "payer": paid_most[0] if paid_most else None,
                  "payer_untrue_mean": paid_most[1] if paid_most else None,
                  "ref_block": [ref_steps[0], ref_steps[-1]]},
    )


def exploit(sc, win: tuple[int, int], ref: tuple[int, int]) -> tuple[float, float, float] | None:
    """(pay before, pay now, z) when the mean reward of an untrue completion rose over the excursion
    beyond noise and by a practical share of the true-untrue pay gap: the policy found a way to be paid
    without being right. A lenient reward that pays wrong answers as it always did is not that: it
    falls, less than the truth does, when the model gets worse."""
    before = np.asarray([x for x in sc._window(sc.pay_untrue, *ref) if math.isfinite(x)])
    now = np.asarray([x for x in sc._window(sc.pay_untrue, *win) if math.isfinite(x)])
    if len(before) < 3 or len(now) < 3:
        return None
    sigma = long_run_sigma(sc, np.asarray([x for x in sc.pay_untrue if math.isfinite(x)]))
    if not math.isfinite(sigma) or sigma <= 0:
        return None
    rise = float(now.mean() - before.mean())
    z = rise / (sigma * math.sqrt(1 / len(before) + 1 / len(now)))
    t_ref = finite_mean(sc._window(sc.truth, *ref))
    # the reference's pay per true completion, from reward = truth * pay_true + (1 - truth) * pay_untrue
    pay_true = (sc.ref_reward - (1 - t_ref) * float(before.mean())) / t_ref if t_ref > 0 else math.nan
    gap = pay_true - float(before.mean()) if math.isfinite(pay_true) else 0.0
    if z < sc.p.z_exploit or rise < sc.p.exploit_share * max(gap, 1e-9):
        return None
    return float(before.mean()), float(now.mean()), float(z)


def long_run_sigma(sc, x: np.ndarray) -> float:
    """A series' noise per step for a sum over many steps: the larger of the step-to-step spread and the
    spread of its block means scaled back to one step (a slow wander counts)."""
    short, _ = spread_sigma(x)
    b = sc.p.block
    m = len(x) // b
    blocks = x[len(x) - m * b:].reshape(m, b).mean(axis=1) if m >= 5 else np.empty(0)
    long_, _ = spread_sigma(blocks) if m >= 5 else (math.nan, 0.0)
    return max((v for v in (short, long_ * math.sqrt(b)) if math.isfinite(v)), default=math.nan)


def payer(sc, win: tuple[int, int]) -> tuple[str, float] | None:
    """The reward function paying untrue completions most over the window, and its mean there."""
    rows = [r for r in sc._window(sc.func_untrue, *win) if r]
    if not rows or not sc.func_names:
        return None
    width = min(len(sc.func_names), min(len(r) for r in rows))
    means = [finite_mean([r[j] for r in rows]) for j in range(width)]
    if not any(math.isfinite(v) for v in means):
        return None
    j = int(np.nanargmax(means))
    return sc.func_names[j], means[j]
