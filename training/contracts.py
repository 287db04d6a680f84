"""Each demo scenario's contract: what it must show on any machine, checked on the run it produced.

Tiny models' trajectories differ between CPUs, BLAS builds and thread counts, so a scenario is
defined by a contract (bands, signs, alert kinds), never by one machine's onset step or accuracy.
The base band is checked before GRPO starts; the outcome after the run. The demo prints each
verdict, tests assert it, and benchmarks/robustness.py counts it over seeds and thread counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diag.detect import detect_all
from diag.summary import summarize


@dataclass(frozen=True)
class Contract:
    scenario: str
    base_band: tuple[float, float]  # held-out accuracy of the base before GRPO
    text: str  # the contract in words, for the README and the demo


CONTRACTS = {
    "strong-healthy": Contract(
        "strong-healthy", (0.45, 0.80),
        "base held-out accuracy in 0.45-0.80; strict reward; held-out accuracy at the end >= at the start; "
        "no critical alert; no truth-gap alert"),
    "weak-signal-gap": Contract(
        "weak-signal-gap", (0.0, 0.10),
        "base held-out accuracy <= 0.10; mean all-fail share >= 0.75; a signal-gap alert; no truth-gap alert"),
    "deceptive-reward": Contract(
        "deceptive-reward", (0.45, 0.80),
        "base held-out accuracy in 0.45-0.80; lenient reward; the training reward holds or rises (end >= start) "
        "while strict held-out accuracy ends >= 0.10 below its peak; a decoupling alert naming 'lenient_correct'; "
        "a critical truth-gap alert naming 'lenient_correct'"),
}


@dataclass
class Verdict:
    scenario: str
    met: bool
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (clause, held, what was measured)

    def line(self) -> str:
        failed = [f"{c} ({m})" for c, ok, m in self.checks if not ok]
        return "contract met" if self.met else "contract NOT met: " + "; ".join(failed)


def base_ok(scenario: str, accuracy: float) -> tuple[bool, str]:
    lo, hi = CONTRACTS[scenario].base_band
    ok = lo <= accuracy <= hi
    return ok, (f"base held-out accuracy {accuracy:.3f} is {'inside' if ok else 'OUTSIDE'} the band {lo:.2f}-{hi:.2f}")


def critical_step(f) -> int:
    """The step at which an alert became critical (it may have opened as a warning earlier)."""
    return int(f.evidence.get("critical_at", f.step))


def check(scenario: str, run) -> Verdict:
    """The contract's clauses, each with the number it was judged on, read from the run itself."""
    s = summarize(run)
    findings = detect_all(run)
    alerts = [f for f in findings if f.is_alert]
    v = Verdict(scenario, True)

    def clause(text: str, ok: bool, measured: str) -> None:
        v.checks.append((text, bool(ok), measured))
        v.met &= bool(ok)

    start, end, peak = s["accuracy_start"], s["accuracy_end"], s["accuracy_peak"]
    if start is None or end is None:
        clause("held-out evaluations exist", False, "none recorded")
        return v
    lo, hi = CONTRACTS[scenario].base_band
    clause(f"base accuracy in {lo:.2f}-{hi:.2f}", lo <= start <= hi, f"{start:.3f}")
    if scenario == "strong-healthy":
        clause("accuracy end >= start", end >= start, f"{start:.3f} -> {end:.3f}")
        crit = [f"{f.kind}@{f.onset}" for f in alerts if f.severity == "critical"]
        clause("no critical alert", not crit, ", ".join(crit) or "none")
    elif scenario == "weak-signal-gap":
        fail = s["frac_all_fail_mean"] or 0.0
        clause("mean all-fail >= 0.75", fail >= 0.75, f"{fail:.3f}")
        clause("signal-gap alert", any(f.kind == "signal_gap" for f in alerts),
               ", ".join(sorted({f.kind for f in alerts})) or "no alert")
    if scenario in ("strong-healthy", "weak-signal-gap"):
        gaps = [f"{f.severity}@{f.onset}" for f in alerts if f.kind == "truth_gap"]
        clause("no truth-gap alert", not gaps, ", ".join(gaps) or "none")
    elif scenario == "deceptive-reward":
        r0, r1 = s["reward_start"], s["reward_end"]
        clause("reward end >= start", r0 is not None and r1 is not None and r1 >= r0, f"{r0:.3f} -> {r1:.3f}")
        clause("accuracy end <= peak - 0.10", end <= peak - 0.10, f"peak {peak:.3f}, end {end:.3f}")
        dec = [f for f in alerts if f.kind == "decoupling"]
        clause("decoupling alert naming 'lenient_correct'", any("lenient_correct" in f.message for f in dec),
               ", ".join(f"{f.severity} {f.state} onset {f.onset}" for f in dec) or "no decoupling alert")
        # which comes first, the truth gap or the held-out alert, is a trajectory's detail (measured in
        # benchmarks/truth_gap.py over seeds and thread counts), not a contract every machine meets
        gap = [f for f in alerts if f.kind == "truth_gap" and f.severity == "critical"]
        gap_at = min((critical_step(f) for f in gap if "lenient_correct" in f.message), default=None)
        dec_at = min((critical_step(f) for f in dec if f.severity == "critical"), default=None)
        clause("critical truth-gap alert naming 'lenient_correct'", gap_at is not None,
               f"truth gap critical at step {gap_at}, held-out decoupling critical at step {dec_at}")
    else:
        raise KeyError(f"no contract for scenario {scenario!r}; known: {sorted(CONTRACTS)}")
    return v
