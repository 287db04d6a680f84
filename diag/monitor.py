"""The online monitor: the detectors run incrementally inside training.

It listens to a Recorder (steps, evaluations) and keeps bounded state: the signal-gap state machine
costs O(1) per step, and the decoupling check runs once per evaluation over at most `max_evals`
evaluations and the steps around them, so the cost per step does not grow with the run. New findings
go through a Dispatcher (one alert per onset, cooldown per kind) to the sinks; kinds listed in
`stop_on` ask the trainer to stop (the best checkpoint by held-out accuracy is kept by the trainer).
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field

import numpy as np

from diag.alerts import ConsoleSink, Dispatcher, NotifySink, StoreSink, delivery_state
from diag.detect.align import Aligned, build, func_matrix, independent
from diag.detect.base import Finding, number as _num
from diag.detect.decoupling import DecouplingScanner
from diag.detect.run import DetectParams
from diag.detect.signal_gap import (RollingShare, failing_share, gap_finding, resolved_gap, reward_range_of,
                                    saturated_finding, split_zero_signal)
from diag.detect.truth_gap import TruthGapScanner, cite_truth


@dataclass
class MonitorConfig:
    params: DetectParams = field(default_factory=DetectParams)
    console: bool = True
    # apprise URLs, one per target ("slack://...", "json://host:port/path", "$ENV_VAR" to read one)
    notify: tuple[str, ...] = ()
    notify_timeout: float = 5.0  # seconds to connect and to read, per attempt
    notify_retries: int = 2  # extra attempts per target after a failure
    notify_queue: int = 64  # alerts waiting for delivery; beyond it an alert is dropped and says so
    stop_on: tuple[str, ...] = ()  # e.g. ("decoupling",): stop training when one fires
    cooldown_steps: int = 50
    max_evals: int = 64


class Monitor:
    def __init__(self, recorder, config: MonitorConfig | None = None, run_name: str | None = None,
                 func_names: list[str] | None = None, group_size: int | None = None, extra_sinks=(),
                 reward_range: tuple[float, float] | list | None = None):
        self.config = c = config or MonitorConfig()
        # a log with the trainer's zero-std share only (no per-group classes): the reward's place in its
        # range splits it into all-fail and all-pass, as offline (diag.detect.signal_gap.reward_range)
        self.reward_range_given = reward_range
        self.reward_seen = (math.inf, -math.inf)
        self.recorder = recorder
        self.func_names = list(func_names or getattr(recorder, "reward_funcs", []))
        self.group_size = group_size
        p = c.params.signal_gap
        self.gap = RollingShare(p.window, p.all_fail_share, p.hysteresis)
        self.sat = RollingShare(p.window, p.saturated_share, p.hysteresis)
        # growable per-step series (appends only); slices around evaluations keep per-eval work bounded
        self.step_ids: list[int] = []
        self.series: dict[str, list] = {"reward": [], "length": [], "clipped": [], "funcs": []}
        self.evals: list[tuple[int, float, float, np.ndarray | None]] = []
        self.eval_set: str | None = None
        self.others: dict[str, dict[int, tuple[float, float]]] = {}  # other held-out sets: step -> (value, n)
        self.pending: int | None = None  # the primary evaluation waiting for the other sets of its step
        self.scanner = DecouplingScanner(c.params.decoupling)
        self.truth = TruthGapScanner(self.func_names, c.params.truth_gap)
        self.gap_alert: Finding | None = None
        self.findings: list[Finding] = []
        self.stop_requested: str | None = None
        sinks: list = []
        if c.console:
            sinks.append(ConsoleSink())
        if recorder is not None:
            sinks.append(StoreSink(recorder))
        self.notifier = None
        if c.notify:
            self.notifier = NotifySink(c.notify, timeout=c.notify_timeout, retries=c.notify_retries,
                                       queue_size=c.notify_queue, on_result=self._delivery)
            sinks.append(self.notifier)
        sinks.extend(extra_sinks)
        name = run_name or (recorder.path.name if recorder is not None else "?")
        self.dispatcher = Dispatcher(sinks, run=name, cooldown_steps=c.cooldown_steps)

    # ----------------------------------------------------------------------------- events

    def __call__(self, kind: str, payload) -> None:
        if kind == "step":
            self.on_step(payload)
        elif kind == "eval":
            self.on_eval(payload)

    def on_step(self, row: dict) -> None:
        step = int(row["step"])
        if self.pending is not None and step > self.pending:
            self._judge()  # training moved on: every set evaluated at that step has reported
        if self.step_ids and step <= self.step_ids[-1]:
            return  # a repeated step (e.g. several generation calls per step) keeps the first
        self.step_ids.append(step)
        self.series["reward"].append(_num(row.get("reward_mean")))
        self.series["length"].append(_num(row.get("len_mean")))
        self.series["clipped"].append(_num(row.get("frac_clipped")))
        self.series["funcs"].append(list(row.get("func_mean") or []))
        p = self.config.params.signal_gap
        failing, passing = self._shares(row)
        ev = self.gap.push(step, failing, _num(row.get("effective_batch")), _num(row.get("n_completions")))
        if ev == "start":
            self.gap_alert = gap_finding(self.gap.episode, step, p, self.group_size, None)
            self._emit(self.gap_alert)
        elif (ev is None and self.gap_alert is not None and self.gap_alert.severity == "warning"
              and self.gap.episode is not None and self.gap.episode.peak >= p.critical_share):
            # the episode deepened past the critical share: the same alert, escalated (as offline's final state)
            self.gap_alert = gap_finding(self.gap.episode, step, p, self.group_size, None)
            self._emit(self.gap_alert)
        elif ev == "end":
            if self.gap_alert is not None:
                self._emit(resolved_gap(self.gap_alert, self.gap.episode, step, p))
            self.gap.episode = self.gap_alert = None  # the next sustained episode is a new alert
        ev = self.sat.push(step, passing)
        if ev == "start":
            self._emit(saturated_finding(self.sat.episode, step, p))
        elif ev == "end":
            self.sat.episode = None
        for f in self.truth.push(row):
            self._emit(f)

    def _shares(self, row: dict) -> tuple[float, float]:
        """(failing share, all-pass share) of one step: as recorded per group, else split from the
        trainer's zero-std share by the batch reward's place in its range: given, else inferred from the
        rewards seen so far by the offline rule (all in 0..1: 0..1; else their min..max)."""
        failing, passing = _num(failing_share(row)), _num(row.get("frac_all_pass"))
        zero, reward = _num(row.get("frac_zero_signal")), _num(row.get("reward_mean"))
        if math.isfinite(reward):
            self.reward_seen = (min(self.reward_seen[0], reward), max(self.reward_seen[1], reward))
        if math.isnan(failing) and math.isfinite(zero) and math.isfinite(reward):
            rng = reward_range_of(self.reward_seen, self.reward_range_given)
            if rng is not None:
                f, ok = split_zero_signal(np.array([zero]), np.array([reward]), rng[0], rng[1])
                failing, passing = float(f[0]), (float(ok[0]) if math.isnan(passing) else passing)
        return failing, passing

    def on_eval(self, payload: dict) -> None:
        frame = payload["frame"]
        rows = [r for r in frame.iter_rows(named=True) if r["bucket"] == "all" and r["metric"] == "accuracy"]
        for r in rows:
            if self.eval_set is None:
                self.eval_set = r["eval_set"]
            step = int(r["step"])
            if r["value"] is None:
                continue
            if r["eval_set"] != self.eval_set:
                self.others.setdefault(r["eval_set"], {}).setdefault(step, (float(r["value"]), _num(r["n"])))
            elif not self.evals or step > self.evals[-1][0]:  # a repeated evaluation counts once, its first (as offline)
                self.evals.append((step, float(r["value"]), _num(r["n"]), payload.get("correct")))
                self.evals = self.evals[-self.config.max_evals:]
                lo = self.evals[0][0]
                self.others = {k: {s: v for s, v in d.items() if s >= lo} for k, d in self.others.items()}  # bounded
                self.pending = step
        # judged once the other sets of its step have reported (offline sees them all), or at the next step
        if self.pending is not None and all(self.pending in d for d in self.others.values()):
            self._judge()

    def _judge(self) -> None:
        self.pending = None
        a = self.aligned()
        gap = [self.truth.open.finding] if self.truth.open is not None else []
        for f in self.scanner.judge(a, len(a) - 1):
            self._emit(cite_truth(f, gap, self.step_ids[-1] if self.step_ids else None))

    def aligned(self) -> Aligned:
        """The recent evaluations against the steps around them, by the same rule as the offline check."""
        ev = self.evals
        steps = np.array([e[0] for e in ev], dtype=float)
        spacing = float(np.median(np.diff(steps))) if len(steps) > 1 else 10.0
        lo = bisect.bisect_right(self.step_ids, steps[0] - spacing)
        series = {k: np.array(self.series[k][lo:], dtype=float) for k in ("reward", "length", "clipped")}
        acc = np.array([e[1] for e in ev])
        others = {name: (np.array([d.get(int(s), (np.nan, np.nan))[0] for s in steps]),
                         np.array([d.get(int(s), (np.nan, np.nan))[1] for s in steps])) for name, d in self.others.items()}
        return build(self.eval_set or "heldout", steps, acc, np.array([e[2] for e in ev]),
                     np.array(self.step_ids[lo:], dtype=float), series,
                     func_matrix(self.series["funcs"][lo:], len(self.func_names)), self.func_names,
                     {e[0]: np.asarray(e[3], dtype=bool) for e in ev if e[3] is not None}, independent(acc, others))

    # ----------------------------------------------------------------------------- output

    def _emit(self, finding: Finding) -> None:
        finding = self._with_pattern(finding)
        if self.dispatcher.offer(finding):
            self.findings.append(finding)
            # a decoupling or truth-gap warning is the first evidence: stop only once it is confirmed
            confirmed = finding.kind not in ("decoupling", "truth_gap") or finding.severity == "critical"
            if finding.firing and confirmed and finding.kind in self.config.stop_on and self.stop_requested is None:
                self.stop_requested = f"{finding.kind} at step {finding.step}: {finding.message}"

    def _with_pattern(self, finding: Finding) -> Finding:
        """A firing reward-truth alert with how the reward is being gamed (diag.explain: the top pattern of the
        paid-untrue completions recorded so far), so the console, the store and every notification carry it."""
        if (self.recorder is None or not finding.firing or finding.kind not in ("truth_gap", "decoupling")
                or finding.onset is None or "pattern" in finding.evidence.get("explain", {})):
            return finding
        try:
            from diag.explain import explain_run, headline  # lazy: only once such an alert fires
            from diag.store import open_run  # lazy: as above

            self.recorder.flush()
            found = explain_run(open_run(self.recorder.path), findings=[finding])
        except Exception:  # noqa: BLE001 - an explanation must never cost the alert it explains
            return finding
        line = headline(found)
        if line is None:
            return finding
        return finding.with_note(f" How: {line} (grpo-diag explain).", explain={"pattern": line,
                                                                              "paid_untrue": found["paid_untrue"]})

    def _delivery(self, finding: Finding, outcome: dict) -> None:
        if self.recorder is not None:
            delivered = delivery_state(self.dispatcher.sinks, outcome)
            self.recorder.log_alert({**finding.to_row(), "delivered": json.dumps(delivered)})

    def close(self, timeout: float = 30.0) -> None:
        if self.pending is not None:
            self._judge()
        if self.notifier is not None:
            self.notifier.wait(timeout)

