"""Serve the dashboard from a background thread (screenshots, benchmarks and browser tests)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def serving(root: str | Path):
    """Yields the base URL of a dashboard on a free 127.0.0.1 port; stops it on exit."""
    import logging

    from werkzeug.serving import make_server

    from dashboards.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines

    srv = make_server("127.0.0.1", 0, create_app(root).server, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
