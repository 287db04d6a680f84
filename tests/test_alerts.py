"""Alert sinks against a real HTTP server on 127.0.0.1; de-duplication, cooldown, console escaping."""

import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from diag.alerts import ConsoleSink, Dispatcher, NotifySink, redact
from diag.detect.base import Finding


def finding(kind="decoupling", step=100, onset=80, severity="critical", message="accuracy fell"):
    return Finding(kind=kind, severity=severity, step=step, onset=onset, window_start=onset, window_end=step,
                   message=message, evidence={"drop": 0.1, "nan": float("nan")})


class Server:
    """A local receiver for apprise's json:// target whose behaviour the test picks: ok, 500, or slow."""

    def __init__(self, mode="ok", delay=0.0):
        self.mode, self.delay, self.received, self.hits, self.headers = mode, delay, [], 0, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.hits += 1
                outer.headers.append(dict(self.headers))
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
        self.port = self.httpd.server_port
        self.url = f"json://127.0.0.1:{self.port}/hook"
        self.target = f"json://127.0.0.1:{self.port}/hook"  # how the outcome names it
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def collect():
    results = []
    return results, lambda f, outcome: results.append(outcome)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


def test_notification_reaches_a_json_endpoint():
    srv = Server()
    results, cb = collect()
    try:
        sink = NotifySink([srv.url], on_result=cb)
        sink.send(finding(), {"run": "my-run"})
        sink.send(finding(severity="warning", step=130, onset=80).resolve(140, "back"), {"run": "my-run"})
        assert sink.wait(10)
    finally:
        srv.close()
    assert results == [{srv.target: "delivered"}] * 2
    first, second = srv.received
    assert first["type"] == "failure" and second["type"] == "success"  # critical, then resolved
    assert "CRITICAL" in first["title"] and "decoupling" in first["title"] and "my-run" in first["title"]
    assert "accuracy fell" in first["message"] and "step 100" in first["message"]
    assert "RESOLVED at step 140" in second["title"]
    assert srv.headers[0]["Content-Type"].startswith("application/json")


def test_500_is_retried_by_apprise_then_reported_failed():
    srv = Server(mode="500")
    results, cb = collect()
    try:
        sink = NotifySink([srv.url], retries=2, wait=0.01, on_result=cb)
        sink.send(finding(), {"run": "r"})
        assert sink.wait(10)
    finally:
        srv.close()
    assert srv.hits == 3  # one try and two retries
    status = results[0][srv.target]
    assert status.startswith("failed after 3 attempt(s)") and "500" in status


def test_slow_endpoint_times_out_without_blocking_the_caller():
    srv = Server(delay=2.0)
    results, cb = collect()
    try:
        sink = NotifySink([srv.url], timeout=0.3, retries=1, wait=0.01, on_result=cb)
        t = time.perf_counter()
        sink.send(finding(), {"run": "r"})
        assert time.perf_counter() - t < 0.05  # training is never held up
        assert sink.wait(10)
    finally:
        srv.close()
    status = results[0][srv.target]
    assert status.startswith("failed after 2 attempt(s)")


def test_down_endpoint_is_reported_failed():
    port = closed_port()
    results, cb = collect()
    sink = NotifySink([f"json://127.0.0.1:{port}/x"], retries=1, wait=0.01, on_result=cb)
    sink.send(finding(), {"run": "r"})
    assert sink.wait(10)
    assert results[0][f"json://127.0.0.1:{port}/x"].startswith("failed after 2 attempt(s)")


def test_each_target_gets_its_own_outcome():
    ok, bad = Server(), Server(mode="500")
    results, cb = collect()
    try:
        sink = NotifySink([ok.url, bad.url], retries=0, on_result=cb)
        sink.send(finding(), {"run": "r"})
        assert sink.wait(10)
    finally:
        ok.close()
        bad.close()
    assert results[0][ok.target] == "delivered" and results[0][bad.target].startswith("failed after 1 attempt(s)")


def test_a_full_queue_drops_and_says_so():
    srv = Server(delay=0.5)
    results, cb = collect()
    try:
        sink = NotifySink([srv.url], queue_size=1, retries=0, on_result=cb)
        for i in range(4):
            sink.send(finding(step=100 + i, onset=80 + i), {"run": "r"})
        assert sink.wait(15)
    finally:
        srv.close()
    statuses = [r[srv.target] for r in results]
    assert len(statuses) == 4
    assert any(s.startswith("dropped:") for s in statuses) and "delivered" in statuses
    assert srv.hits == statuses.count("delivered")


def test_bad_urls_are_refused_with_the_fix(monkeypatch):
    with pytest.raises(ValueError, match="not a URL apprise understands.*json://host:port/path"):
        NotifySink(["file:///etc/passwd"])
    monkeypatch.delenv("GRPO_DIAG_TEST_HOOK", raising=False)
    with pytest.raises(ValueError, match=r"\$GRPO_DIAG_TEST_HOOK.*not set"):
        NotifySink(["$GRPO_DIAG_TEST_HOOK"])


def test_url_from_the_environment(monkeypatch):
    srv = Server()
    results, cb = collect()
    monkeypatch.setenv("GRPO_DIAG_TEST_HOOK", srv.url)
    try:
        sink = NotifySink(["$GRPO_DIAG_TEST_HOOK"], on_result=cb)
        sink.send(finding(), {"run": "r"})
        assert sink.wait(10)
    finally:
        srv.close()
    assert results == [{srv.target: "delivered"}] and srv.received


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


def test_dead_target_is_recorded_as_undelivered_and_training_goes_on(tmp_path):
    """The monitor's notification target is a closed port: logging continues at full speed and the
    alert row ends up marked as failed after apprise's retries."""
    import numpy as np

    import diag
    from diag.monitor import Monitor, MonitorConfig

    port = closed_port()
    rec = diag.Recorder(str(tmp_path), "w", ["r"], group_size=8, flush_secs=0)
    mon = Monitor(rec, MonitorConfig(console=False, notify=(f"json://127.0.0.1:{port}/",), notify_retries=1))
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
    assert delivered[f"json://127.0.0.1:{port}/"].startswith("failed after 2 attempt(s)")
    assert delivered["store"] == "sent"


def test_secrets_never_reach_the_store_or_the_console(tmp_path, capfd):
    """A password and a token in the target URL: masked in the outcome, the alert rows, every file of
    the run and everything printed, while the server still receives the alert."""
    import numpy as np

    import diag
    from diag.monitor import Monitor, MonitorConfig
    from training.config import MonitorCfg

    srv = Server(mode="500")
    secret, token = "hunter2-s3cr3t", "xoxb-T0K3N-value"
    url = f"json://alice:{secret}@127.0.0.1:{srv.port}/{token}"
    try:
        rec = diag.Recorder(str(tmp_path), "s", ["r"], group_size=8, flush_secs=0)
        mon = Monitor(rec, MonitorConfig(console=True, notify=(url,), notify_retries=0))
        rec.subscribe(mon)
        for step in range(1, 30):
            rec.log_batch(step, np.zeros(64), passed=np.zeros(64, bool))
        mon.close()
        rec.close()
    finally:
        srv.close()
    assert srv.hits == 1 and srv.headers[0].get("Authorization", "").startswith("Basic ")
    stored = b"".join(p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file())
    out = capfd.readouterr()
    for text in (stored.decode("latin-1"), out.out, out.err):
        assert secret not in text and token not in text
    delivered = json.loads(diag.open_run(tmp_path / "s").alerts["delivered"][0])
    (name, status), = [(k, v) for k, v in delivered.items() if k.startswith("json")]
    assert status.startswith("failed") and secret not in name and token not in name
    # the run config stored with a run keeps only the redacted form; the live one keeps the URL to send with
    from training.config import from_dict

    cfg = from_dict({"name": "s", "monitor": {"notify": [url, "$GRPO_ALERTS_URL"]}})
    assert cfg.monitor.notify == [url, "$GRPO_ALERTS_URL"]
    stored = json.dumps(cfg.to_dict())
    assert secret not in stored and token not in stored and "$GRPO_ALERTS_URL" in stored
    assert redact(url) in stored and isinstance(MonitorCfg(notify=[url]), MonitorCfg)


def test_config_webhook_key_becomes_a_json_target():
    from training.config import ConfigError, MonitorCfg

    assert MonitorCfg(webhook="https://example.org/hook").notify == ["jsons://example.org/hook"]
    assert MonitorCfg(webhook="http://127.0.0.1:9/h").notify == ["json://127.0.0.1:9/h"]
    with pytest.raises(ConfigError, match=r"monitor.notify\[0\].*json://host:port/path"):
        MonitorCfg(notify=["nosuch://x"])
