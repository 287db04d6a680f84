"""Alert sinks: console, the run's alerts table, a webhook; de-duplication and cooldown.

A sink never slows or stops training: the webhook posts from a background thread with a timeout and
retries with backoff, and records the outcome (delivered / failed after N tries) in the alerts table
as a new row for the same alert id (readers keep the last row per id).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Protocol

from diag.detect.base import SEVERITY_RANK, Finding


class Sink(Protocol):
    name: str

    def send(self, finding: Finding, context: dict) -> None: ...


class ConsoleSink:
    name = "console"

    def __init__(self, stream=None):
        self.stream = stream

    def send(self, finding: Finding, context: dict) -> None:
        from rich.console import Console
        from rich.panel import Panel

        color = {"critical": "red", "warning": "yellow"}.get(finding.severity, "cyan")
        state = f"RESOLVED at step {finding.resolved_step}" if finding.state == "resolved" else finding.severity.upper()
        color = "green" if finding.state == "resolved" else color
        title = f"grpo-diag {state}: {finding.kind} in run {context.get('run', '?')}"
        # markup=False: the message may quote model output or run names; never interpret it
        Console(file=self.stream or sys.stderr, markup=False, highlight=False).print(
            Panel(finding.message, title=title, border_style=color))


class StoreSink:
    """Appends to the run's alerts table through the Recorder."""

    name = "store"

    def __init__(self, recorder):
        self.recorder = recorder

    def send(self, finding: Finding, context: dict) -> None:
        self.recorder.log_alert({**finding.to_row(), "delivered": json.dumps(context.get("delivered", {}))})


@dataclass
class WebhookSink:
    """JSON POST with a Slack-compatible `text`, from a background thread.

    `on_result(finding, status)` is called with "delivered" or "failed: <reason> after N tries".
    """

    url: str
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5  # seconds, doubled after each failed try
    headers: dict = field(default_factory=dict)
    on_result: Callable[[Finding, str], None] | None = None
    name: str = "webhook"

    def __post_init__(self):
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {self.url!r}")
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="grpo-diag-webhook")
        self._thread.start()

    def payload(self, finding: Finding, context: dict) -> dict:
        icon = {"critical": ":rotating_light:", "warning": ":warning:"}.get(finding.severity, ":information_source:")
        if finding.state == "resolved":
            icon = ":white_check_mark:"
        level = f"{finding.severity}, resolved" if finding.state == "resolved" else finding.severity
        return {
            "text": f"{icon} grpo-diag {level}: {finding.kind} in run "
                    f"`{context.get('run', '?')}` at step {finding.step}\n{finding.message}",
            "run": context.get("run"),
            "finding": finding.to_dict(),
        }

    def send(self, finding: Finding, context: dict) -> None:
        self._q.put((finding, self.payload(finding, context)))

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **self.headers})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - user-configured URL
            if resp.status >= 300:
                raise urllib.error.HTTPError(self.url, resp.status, resp.reason, resp.headers, None)

    def deliver(self, finding: Finding, payload: dict) -> str:
        body = json.dumps(payload, default=str).encode()
        delay, last = self.backoff, "no attempt"
        for attempt in range(1, self.retries + 1):
            try:
                self._post(body)
                return "delivered"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                reason = getattr(e, "reason", e)
                last = f"{type(reason).__name__}: {reason}"
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        return f"failed: {last} after {self.retries} tries"

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            finding, payload = item
            status = self.deliver(finding, payload)
            if status != "delivered":
                print(f"[grpo-diag] webhook {status}", file=sys.stderr)
            if self.on_result is not None:
                try:
                    self.on_result(finding, status)
                except Exception as e:  # noqa: BLE001
                    print(f"[grpo-diag] webhook result handler failed: {e}", file=sys.stderr)
            self._q.task_done()

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until queued alerts are handled (for shutdown and tests)."""
        end = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.02)
        return self._q.unfinished_tasks == 0


@dataclass
class Dispatcher:
    """Sends each new finding once: de-duplicated by (kind, onset), with a per-kind cooldown."""

    sinks: list
    run: str = "?"
    cooldown_steps: int = 50
    min_severity: str = "warning"
    sent: dict = field(default_factory=dict)  # key -> finding
    last_step: dict = field(default_factory=dict)  # kind -> (step, severity rank)

    def offer(self, finding: Finding) -> bool:
        """Send a new alert, an escalation of one already sent (same id, higher severity), or its
        resolution; drop repeats, and new alerts of a kind that fired within the cooldown."""
        if SEVERITY_RANK[finding.severity] < SEVERITY_RANK[self.min_severity]:
            return False
        rank = SEVERITY_RANK[finding.severity]
        known = self.sent.get(finding.key)
        if known is not None:
            resolves = finding.state == "resolved" and known.state != "resolved"
            escalates = finding.state == "firing" and known.state == "firing" and rank > SEVERITY_RANK[known.severity]
            if not (resolves or escalates):
                return False
        else:
            if finding.state == "resolved":
                return False  # never announced: nothing to resolve
            prev = self.last_step.get(finding.kind)
            if prev is not None and finding.step - prev[0] < self.cooldown_steps and rank <= prev[1]:
                return False  # same kind fired recently at this severity: one alert per episode, not per step
        self.sent[finding.key] = finding
        if known is None:
            self.last_step[finding.kind] = (finding.step, rank)
        context = {"run": self.run, "delivered": {s.name: "sent" if s.name != "webhook" else "pending"
                                                  for s in self.sinks}}
        for sink in self.sinks:
            try:
                sink.send(finding, context)
            except Exception as e:  # noqa: BLE001 - a broken sink must not stop the others or training
                print(f"[grpo-diag] alert sink {sink.name} failed: {e}", file=sys.stderr)
        return True
