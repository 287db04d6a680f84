"""Runs page (/): every run under the root with status, headline numbers, alert badges and its verdict
(how it ends, as `grpo-diag check` says it), filtered by verdict: a sweep's few bad runs out of hundreds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from dash import Input, Output, dash_table, dcc, html

from dashboards import ids

COLUMNS = [("run", "run"), ("verdict", "ends"), ("worst", "worst firing"), ("status", "status"), ("kind", "kind"),
           ("model", "model"), ("task", "task"), ("steps", "steps"), ("reward", "latest reward"),
           ("accuracy", "latest held-out acc"), ("all_fail", "mean all-fail"), ("alerts", "alerts")]
SEVERITY_ORDER = {"critical": 0, "warning": 1, "": 2}


def rows(store, verdicts: list[str] | None = None) -> list[dict]:
    """The table's rows, worst first (critical, warning, then the rest by name), only the runs whose
    verdict is one of `verdicts` when given."""
    out = []
    for r in sorted(store.runs_table(), key=lambda r: (SEVERITY_ORDER.get(r.get("worst", ""), 2), r["run"])):
        # run names are validated ([A-Za-z0-9._-]), so the markdown link cannot carry markup
        out.append({**r, "run": f"[{r['run']}](/run/{r['run']})"})
    return only(out, verdicts)


def only(table: list[dict], verdicts: list[str] | None) -> list[dict]:
    """The rows whose verdict is one of `verdicts` (all of them without any)."""
    return [r for r in table if not verdicts or r.get("verdict") in verdicts]


def verdict_options(verdicts: Iterable[str]) -> list[dict]:
    """The verdicts present, each with its count, most frequent first: 'decoupled (3)'."""
    return [{"label": f"{v} ({n})", "value": v} for v, n in sorted(Counter(verdicts).items(), key=lambda x: (-x[1], x[0]))]


def layout(store) -> html.Div:
    table = rows(store)
    return html.Div([
        html.H2("Runs"),
        html.P(["Runs under ", html.Code(str(store.root)), ". ",
                dcc.Link("Compare runs", href="/compare")]),
        html.Div([html.Span("runs that end: "),
                  dcc.Dropdown(id=ids.RUNS_VERDICT, multi=True, placeholder="any verdict",
                               options=verdict_options(r.get("verdict", "") for r in table), style={"width": "480px", "display": "inline-block",
                                                                      "verticalAlign": "middle"})]),
        dash_table.DataTable(
            id=ids.RUNS_TABLE, data=table,
            columns=[{"id": k, "name": n, "presentation": "markdown"} if k == "run" else {"id": k, "name": n}
                     for k, n in COLUMNS],
            sort_action="native", filter_action="native", page_size=50,
            markdown_options={"html": False, "link_target": "_self"},
            style_cell={"textAlign": "left", "fontFamily": "system-ui", "fontSize": 13},
            style_data_conditional=[
                {"if": {"filter_query": "{alerts} contains 'decoupling'"}, "backgroundColor": "#fde0e0"},
                {"if": {"filter_query": "{alerts} contains 'signal_gap'"}, "backgroundColor": "#fff3cd"},
                {"if": {"filter_query": "{status} = crashed", "column_id": "status"}, "color": "#b00020"},
                {"if": {"filter_query": "{worst} = critical", "column_id": "verdict"}, "color": "#b00020",
                 "fontWeight": "bold"},
            ],
        ),
        dcc.Interval(id=ids.RUNS_TICK, interval=2000),
    ])


def register(app, store) -> None:
    @app.callback(Output(ids.RUNS_TABLE, "data"), Output(ids.RUNS_VERDICT, "options"),
                  Input(ids.RUNS_TICK, "n_intervals"), Input(ids.RUNS_VERDICT, "value"), prevent_initial_call=True)
    def refresh(_, verdicts):
        every = rows(store)
        return only(every, verdicts), verdict_options(r.get("verdict", "") for r in every)
