"""The end-of-run verdict `grpo-diag check` gives: how the run *ends*, what came and went, where to stop.

A run ends decoupled when a decoupling alert is still firing at its last evaluation (the current level
sits below the best by more than noise while the reward holds); an episode that resolved is listed
with its window but does not make the run end decoupled. The best checkpoint by held-out accuracy is
part of the verdict: it is the step to keep whatever else is said. `fails` applies `--fail-on`: a
finding at or above that severity still firing (information about a missing series never counts).
"""

from __future__ import annotations

from diag.detect.base import SEVERITY_RANK, Finding

FAIL_ON = ("info", "warning", "critical")
ENDS = {"decoupling": "decoupled", "reward_stall": "stalled", "signal_gap": "signal gap", "forgetting": "forgetting",
        "truth_gap": "reward-truth gap"}


def reward_truth_firing(findings: list[Finding]) -> bool:
    """Whether a reward-truth gap or a decoupling alert fires at the end: where `check`, the report and the
    pages say how the reward is being gamed (diag.explain)."""
    return any(f.firing and f.kind in ("truth_gap", "decoupling") for f in findings)


def end_verdict(findings: list[Finding], best: dict | None, fail_on: str = "critical") -> dict:
    """The verdict over a run's findings; `best` is diag.summary.best_checkpoints' answer (or None)."""
    if fail_on not in FAIL_ON:
        raise ValueError(f"--fail-on {fail_on!r}: choose one of {', '.join(FAIL_ON)}")
    alerts = [f for f in findings if f.is_alert]
    firing = [f for f in alerts if f.firing]
    ends = sorted({ENDS.get(f.kind, f.kind) for f in firing}) or ["clean"]
    worst = max((f.severity for f in firing), key=SEVERITY_RANK.get, default=None)
    failing = [f for f in findings if f.kind != "no_data" and f.state == "firing"
               and SEVERITY_RANK[f.severity] >= SEVERITY_RANK[fail_on]]
    by_acc = (best or {}).get("by_accuracy")
    return {
        "ends": ends,
        "worst_firing": worst,
        "firing": [{"id": f.key, "kind": f.kind, "severity": f.severity, "since_step": f.step,
                    "window": [f.window_start, f.window_end]} for f in firing],
        "resolved": [{"id": f.key, "kind": f.kind, "severity": f.severity, "window": [f.window_start, f.window_end],
                      "resolved_step": f.resolved_step} for f in alerts if f.state == "resolved"],
        "best_checkpoint": by_acc,
        "fail_on": fail_on,
        "fails": bool(failing),
    }


def headline(name: str, v: dict) -> str:
    """One line: how the run ends, the episodes that came and went, the checkpoint to keep."""
    ends = ", ".join(v["ends"])
    text = f"{name} ends {ends.upper()}" if v["ends"] != ["clean"] else f"{name} ends clean"
    if v["firing"]:
        text += " (" + "; ".join(f"{f['severity']} {f['kind']} firing since step {f['since_step']}" for f in v["firing"]) + ")"
    if v["resolved"]:
        text += f"; {len(v['resolved'])} episode(s) came and went: " + "; ".join(
            f"{r['kind']} steps {r['window'][0]}-{r['window'][1]}, resolved at step {r['resolved_step']}" for r in v["resolved"])
    b = v["best_checkpoint"]
    if b:
        text += f"; best checkpoint by held-out accuracy: step {b['step']} ({b['accuracy']:.3f})"
    return text + "."
