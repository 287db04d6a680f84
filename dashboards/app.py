"""The Dash app: routing and access control only; pages live in dashboards/pages/."""

from __future__ import annotations

import hmac
import ipaddress
import re
from pathlib import Path

from dash import Dash, Input, Output, dcc, html

from dashboards import ids
from dashboards.pages import compare, prompts, run, runs
from dashboards.query import NotFound, Store, resolve_run

TOKEN_COOKIE = "grpo_diag_token"


def create_app(root: str | Path, token: str | None = None) -> Dash:
    store = Store(root)
    # compress: figure JSON is repetitive; gzip sends a fraction of it (flask-compress)
    app = Dash(__name__, title="grpo-diag", suppress_callback_exceptions=True, update_title=None, compress=True)
    app.layout = html.Div([
        dcc.Location(id=ids.URL),
        html.Div([dcc.Link("grpo-diag", href="/", style={"fontWeight": "bold", "marginRight": "1em"}),
                  dcc.Link("runs", href="/", style={"marginRight": "1em"}), dcc.Link("compare", href="/compare")],
                 style={"padding": "8px 0", "borderBottom": "1px solid #ddd"}),
        html.Div(id=ids.PAGE),
    ], style={"fontFamily": "system-ui, sans-serif", "maxWidth": "1200px", "margin": "0 auto"})

    @app.callback(Output(ids.PAGE, "children"), Input(ids.URL, "pathname"), Input(ids.URL, "search"))
    def route(path, search):
        return page_for(store, path or "/", search or "")

    _serve_images(app, Path(root))
    runs.register(app, store)
    run.register(app, store)
    compare.register(app, store)
    prompts.register(app, store)
    if token:
        _protect(app, token)
    _judge_early(app, store)  # after the token check: a request it refuses starts nothing
    run.warm_up()
    app.store = store  # the runs every page reads: one per app
    return app


def _judge_early(app: Dash, store: Store) -> None:
    """A run page's first judgement starts when the browser asks for the page itself, not when the
    route callback runs: the browser spends the second between the two loading Dash's bundles, and a long
    run's detectors use it (the page's first drawing waits for their findings). The name is resolved inside
    the runs root as the route resolves it; anything else starts nothing."""
    from flask import request

    @app.server.before_request
    def judge():
        path = request.path
        if request.method != "GET" or not path.startswith("/run/") or path.endswith("/prompts"):
            return None
        try:
            store.start_judging(path[len("/run/"):].rstrip("/"))
        except Exception:  # noqa: BLE001 - the route reports a missing or unreadable run, as before
            pass
        return None


IMAGE_NAME = re.compile(r"^[0-9a-f]{16}$")


def _serve_images(app: Dash, root: Path) -> None:
    """/image/<run>/<key>.png: a thumbnail the recorder stored in the run's images folder. The key is a
    content hash (16 hex digits) and the run is resolved inside the runs root: no path from the data or
    the URL ever reaches the file system."""
    from flask import abort, send_file

    @app.server.route("/image/<name>/<key>.png")
    def image(name: str, key: str):
        if not IMAGE_NAME.match(key):
            abort(404)
        try:
            path = resolve_run(root, name) / "images" / f"{key}.png"
        except NotFound:
            abort(404)
        if not path.is_file():
            abort(404)
        return send_file(path, mimetype="image/png", max_age=3600)


def page_for(store: Store, path: str, search: str = ""):
    if path in ("/", ""):
        return runs.layout(store)
    if path.rstrip("/") == "/compare":
        return compare.layout(store, search)
    if path.startswith("/run/"):
        name = path[len("/run/"):].rstrip("/")
        page = run
        if name.endswith("/prompts"):
            name, page = name[: -len("/prompts")], prompts
        try:
            store.get(name)
        except NotFound as e:
            return html.Div([html.H2("Run not found"), html.P(str(e))])
        if page is run:
            store.start_judging(name)  # while the browser mounts the page: its first drawing waits for less
        return page.layout(store, name)
    return html.Div([html.H2("Not found"), html.P(f"no page at {path}")])


def _protect(app: Dash, token: str) -> None:
    """Every request needs the token (?token=... once, then a cookie), compared in constant time."""
    from flask import make_response, request

    server = app.server

    @server.before_request
    def check():
        given = request.args.get("token") or request.cookies.get(TOKEN_COOKIE) or \
            request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return make_response("grpo-diag: access token required (open the URL printed at start-up)", 403)
        return None

    @server.after_request
    def remember(resp):
        if request.args.get("token"):
            resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return resp


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(root: str, host: str = "127.0.0.1", port: int = 8050, token: str | None = None, debug: bool = False) -> None:
    import secrets

    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(16)
        print(f"[grpo-diag] bound to {host}: access needs a token; generated one for this session")
    app = create_app(root, token)
    shown = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"[grpo-diag] dashboard for {Path(root).resolve()} at {shown}")
    app.run(host=host, port=port, debug=debug)
