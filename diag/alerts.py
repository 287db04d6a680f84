"""Alert sinks: console, the run's alerts table, notifications (apprise); de-duplication and cooldown.

A sink never slows or stops training: notifications go out from a background thread through a
bounded queue, with apprise's per-service timeouts and retries, and their outcome (delivered / failed
after N attempts / dropped) is recorded in the alerts table as a new row for the same alert id
(readers keep the last row per id).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

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
        color = "green" if finding.state == "resolved" else color
        title = message(finding, context)[0]
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


class NotifySink:
    """Notifications through apprise: one URL per target (Slack, Discord, Teams, ntfy, email, a JSON
    webhook, ...), delivered from a background thread so training never waits on a network.

    Each target gets apprise's own timeouts and retries (`cto`, `rto`, `retry`, `wait` URL parameters;
    the ones given here are defaults a URL can override). The queue is bounded: an alert that finds
    it full is not sent and says so. `on_result(finding, {target: outcome})` reports per target
    "delivered", "failed after N attempt(s): <apprise's reason>" or "dropped: ...". Targets are named
    by apprise's privacy form of the URL (tokens and passwords masked), the only form that is ever
    printed or stored; a URL written as "$NAME" is read from the environment variable NAME.
    """

    name = "notify"

    def __init__(self, urls: Sequence[str], timeout: float = 5.0, retries: int = 2, wait: float = 0.5,
                 queue_size: int = 64, on_result: Callable[[Finding, dict], None] | None = None):
        import apprise

        if isinstance(urls, str):
            urls = [urls]
        self.targets: list[tuple[str, object, list[str]]] = []  # (privacy name, Apprise, secrets)
        for i, raw in enumerate(urls):
            given = resolve_url(raw, f"notify target {i + 1}")
            url = _with_defaults(given, {"cto": timeout, "rto": timeout, "retry": retries, "wait": wait})
            obj = apprise.Apprise()
            if not obj.add(url):
                raise ValueError(f"notify target {i + 1} ({_scheme(url)}://...) is not a URL apprise understands; "
                                 "see https://github.com/caronc/apprise/wiki for the URL of each service "
                                 "(a plain JSON webhook: json://host:port/path or jsons:// for HTTPS)")
            name = redact(given)
            if name in self.target_names:  # two URLs that mask alike still get an outcome each
                name = f"{name} (target {i + 1})"
            self.targets.append((name, obj, _secrets(given)))
        self.on_result = on_result
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="grpo-diag-notify")
        self._thread.start()

    @property
    def target_names(self) -> list[str]:
        return [t[0] for t in self.targets]

    def send(self, finding: Finding, context: dict) -> None:
        try:
            self._q.put_nowait((finding, message(finding, context)))
        except queue.Full:
            self._report(finding, {n: f"dropped: {self._q.maxsize} notifications already waiting"
                                   for n in self.target_names})

    def deliver(self, title: str, body: str, notify_type: str) -> dict:
        """Send to every target now (the background thread calls this); {target: outcome}."""
        out = {}
        for name, obj, secrets in self.targets:
            result = obj.notify(body=body, title=title, notify_type=notify_type, body_format="text")
            if result:
                out[name] = "delivered"
                continue
            services = list(result)
            attempts = sum(len(s.attempts) for s in services) or 1
            logs = [e.message for s in services for e in s.logs()] or [str(getattr(result.status, "name", "failed"))]
            out[name] = _scrub(f"failed after {attempts} attempt(s): {logs[-1]}", secrets)
        return out

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            try:
                finding, (title, body, kind) = item
                outcome = self.deliver(title, body, kind)
                self._report(finding, outcome)
            except Exception as e:  # noqa: BLE001 - the delivery thread must outlive any one alert
                print(f"[grpo-diag] notification failed: {type(e).__name__}", file=sys.stderr)
            finally:
                self._q.task_done()

    def _report(self, finding: Finding, outcome: dict) -> None:
        for target, status in outcome.items():
            if status != "delivered":
                print(f"[grpo-diag] notification to {target}: {status}", file=sys.stderr)
        if self.on_result is not None:
            try:
                self.on_result(finding, outcome)
            except Exception as e:  # noqa: BLE001
                print(f"[grpo-diag] notification result handler failed: {e}", file=sys.stderr)

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until queued alerts are handled (for shutdown and tests)."""
        end = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.02)
        return self._q.unfinished_tasks == 0


def message(finding: Finding, context: dict) -> tuple[str, str, str]:
    """(title, body, apprise notify type) of an alert; plain text, the same for every service."""
    resolved = finding.state == "resolved"
    state = f"RESOLVED at step {finding.resolved_step}" if resolved else finding.severity.upper()
    title = f"grpo-diag {state}: {finding.kind} in run {context.get('run', '?')}"
    body = f"{finding.message}\n(step {finding.step}, alert {finding.key})"
    kind = "success" if resolved else {"critical": "failure", "warning": "warning"}.get(finding.severity, "info")
    return title, body, kind


def resolve_url(raw: str, what: str = "notify target") -> str:
    """A URL as given, or "$NAME": the value of environment variable NAME (keeps tokens out of configs)."""
    raw = raw.strip()
    if raw.startswith("$"):
        import os

        value = os.environ.get(raw[1:].strip("{}"))
        if not value:
            raise ValueError(f"{what} names environment variable {raw} but it is not set; export it "
                             "with the notification URL (e.g. slack://... or json://host:port/path)")
        return value
    return raw


def redact(raw: str) -> str:
    """The form of a notification URL that may be printed or stored: apprise's privacy URL without its
    query ("slack://T...2/B...D/x...Q"), "$NAME" as written, else only the scheme."""
    if raw.strip().startswith("$"):
        return raw.strip()
    plugin = _plugin(raw)
    if plugin is None:
        return f"{_scheme(raw)}://***"
    # apprise masks each service's known secrets; a generic webhook's path often is one too
    # (json://host/<token>), so any long path segment, user or query value is masked as well
    shown = plugin.url(privacy=True).split("?", 1)[0]
    return _scrub(shown, _secrets(raw), mask=True)


def understood(raw: str) -> bool:
    """Whether apprise knows the service of this URL ("$NAME" is judged when it is read)."""
    return raw.strip().startswith("$") or _plugin(raw) is not None


def _plugin(raw: str):
    import apprise

    try:
        return apprise.Apprise.instantiate(raw, suppress_exceptions=True)
    except Exception:  # noqa: BLE001 - a URL apprise cannot parse is simply not understood
        return None


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


def _with_defaults(url: str, defaults: dict) -> str:
    from urllib.parse import parse_qsl, urlsplit

    have = {k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    extra = "&".join(f"{k}={v}" for k, v in defaults.items() if k not in have)
    if not extra:
        return url
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def _secrets(url: str) -> list[str]:
    """Pieces of a URL that may be credentials (user info, path segments, query values): scrubbed
    from any reason text before it is printed or stored."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    parts = urlsplit(url)
    pieces = [parts.username, parts.password, *parts.path.split("/"),
              *(v for _, v in parse_qsl(parts.query, keep_blank_values=True))]
    return sorted({unquote(p) for p in pieces if p and len(p) >= 6}, key=len, reverse=True)


def _scrub(text: str, secrets: list[str], mask: bool = False) -> str:
    """Replace each secret by "***" (or, with mask, by apprise's style "x...y")."""
    for s in secrets:
        text = text.replace(s, f"{s[0]}...{s[-1]}" if mask else "***")
    return text


def delivery_state(sinks: list, outcome: dict | None = None) -> dict:
    """What the alerts table records per sink: "sent" for local sinks; per notification target its
    outcome, "pending" until the background thread reports it."""
    out: dict = {}
    for s in sinks:
        if isinstance(s, NotifySink):
            out.update({n: (outcome or {}).get(n, "pending") for n in s.target_names})
        else:
            out[s.name] = "sent"
    return out


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
        context = {"run": self.run, "delivered": delivery_state(self.sinks)}
        for sink in self.sinks:
            try:
                sink.send(finding, context)
            except Exception as e:  # noqa: BLE001 - a broken sink must not stop the others or training
                print(f"[grpo-diag] alert sink {sink.name} failed: {e}", file=sys.stderr)
        return True
