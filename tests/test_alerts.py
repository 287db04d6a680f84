"""Alert sinks against a real HTTP server on 127.0.0.1; de-duplication, cooldown, console escaping."""

import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from diag.alerts import ConsoleSink, Dispatcher, WebhookSink
from diag.detect.base import Finding


def finding(kind="decoupling", step=100, onset=80, severity="critical", message="accuracy fell"):
    return Finding(kind=kind, severity=severity, step=step, onset=onset, window_start=onset, window_end=step,
                   message=message, evidence={"drop": 0.1, "nan": float("nan")})


class Server:
    """A local webhook receiver whose behaviour the test picks: ok, 500, or slow."""

    def __init__(self, mode="ok", delay=0.0):
        self.mode, self.delay, self.received, self.hits = mode, delay, [], 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.hits += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.delay:
                    time.sleep(outer.delay)
                if outer.mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.received.append(json.loads(body))
                try:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first, as the timeout test intends

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def collect():
    results = []
    return results, lambda f, status: results.append(status)


def test_webhook_delivers_slack_compatible_json():
    srv = Server()
    results, cb = collect()
    try:
        sink = WebhookSink(srv.url, on_result=cb)
        sink.send(finding(), {"run": "my-run"})
        assert sink.wait(10)
    finally:
        srv.close()
    assert results == ["delivered"]
    body = srv.received[0]
    assert "decoupling" in body["text"] and "`my-run`" in body["text"] and "accuracy fell" in body["text"]
    assert body["finding"]["evidence"]["nan"] is None  # valid JSON, no NaN
    assert body["run"] == "my-run"


def test_webhook_500_retries_then_fails():
    srv = Server(mode="500")
    results, cb = collect()
    try:
        sink = WebhookSink(srv.url, retries=3, backoff=0.01, on_result=cb)
        sink.send(finding(), {"run": "r"})
        assert sink.wait(10)
    finally:
        srv.close()
    assert srv.hits == 3
    assert results == ["failed: HTTP 500 after 3 tries"]


def test_webhook_timeout_does_not_block_the_caller():
    srv = Server(delay=1.0)
    results, cb = collect()
    try:
        sink = WebhookSink(srv.url, timeout=0.2, retries=2, backoff=0.01, on_result=cb)
        t = time.perf_counter()
        sink.send(finding(), {"run": "r"})
        assert time.perf_counter() - t < 0.05  # training is never held up
        assert sink.wait(10)
    finally:
        srv.close()
    assert results and results[0].startswith("failed:") and "after 2 tries" in results[0]
    assert "timed out" in results[0].lower() or "timeout" in results[0].lower()


def test_webhook_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    results, cb = collect()
    sink = WebhookSink(f"http://127.0.0.1:{port}/", retries=2, backoff=0.01, on_result=cb)
    sink.send(finding(), {"run": "r"})
    assert sink.wait(10)
    assert results[0].startswith("failed:") and "refused" in results[0].lower()


def test_webhook_rejects_non_http_url():
    with pytest.raises(ValueError, match="must start with http"):
        WebhookSink("file:///etc/passwd")


def test_dispatcher_dedup_and_cooldown():
    sent = []

    class Capture:
        name = "capture"

        def send(self, f, ctx):
            sent.append(f)

    d = Dispatcher([Capture()], run="r", cooldown_steps=50)
    assert d.offer(finding(step=100, onset=80))
    assert not d.offer(finding(step=110, onset=80))  # same onset: same alert
    assert not d.offer(finding(step=120, onset=90))  # new onset within the cooldown
    assert d.offer(finding(step=200, onset=180))  # after the cooldown
    assert not d.offer(finding(kind="best_checkpoint", severity="info"))  # info is never alerted
    assert d.offer(finding(kind="signal_gap", severity="warning", step=10, onset=1))
    assert d.offer(finding(kind="signal_gap", severity="critical", step=20, onset=2))  # escalation passes
    assert len(sent) == 4


def test_broken_sink_does_not_stop_others():
    got = []

    class Broken:
        name = "broken"

        def send(self, f, ctx):
            raise RuntimeError("down")

    class Ok:
        name = "ok"

        def send(self, f, ctx):
            got.append(f)

    Dispatcher([Broken(), Ok()]).offer(finding())
    assert got


def test_console_sink_prints_markup_as_text():
    buf = io.StringIO()
    ConsoleSink(stream=buf).send(finding(message="[bold red]x[/] <script>alert(1)</script>"), {"run": "r"})
    out = buf.getvalue()
    assert "[bold red]x[/]" in out and "<script>" in out


def test_dead_webhook_is_recorded_as_undelivered_and_training_goes_on(tmp_path):
    """The monitor's webhook points at a closed port: logging continues at full speed and the alert
    row ends up marked as failed after the retries."""
    import numpy as np

    import diag
    from diag.monitor import Monitor, MonitorConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = diag.Recorder(str(tmp_path), "w", ["r"], group_size=8, flush_secs=0)
    mon = Monitor(rec, MonitorConfig(console=False, webhook=f"http://127.0.0.1:{port}/", webhook_retries=2))
    mon.webhook.backoff = 0.01
    rec.subscribe(mon)
    t = time.perf_counter()
    for step in range(1, 40):
        rec.log_batch(step, np.zeros(64), passed=np.zeros(64, bool))
    assert time.perf_counter() - t < 5  # delivery happens off the training thread
    mon.close()
    rec.close()
    alerts = diag.open_run(tmp_path / "w").alerts
    assert alerts.height == 1 and alerts["kind"][0] == "signal_gap"
    delivered = json.loads(alerts["delivered"][0])
    assert delivered["webhook"].startswith("failed:") and "after 2 tries" in delivered["webhook"]
    assert delivered["store"] == "sent"
