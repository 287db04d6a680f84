"""Runs page (/): every run under the root with status, headline numbers and alert badges."""

from __future__ import annotations

from dash import Input, Output, dash_table, dcc, html

from dashboards import ids

COLUMNS = [("run", "run"), ("status", "status"), ("kind", "kind"), ("model", "model"), ("task", "task"),
           ("steps", "steps"), ("reward", "latest reward"), ("accuracy", "latest held-out acc"),
           ("all_fail", "mean all-fail"), ("alerts", "alerts")]


def rows(store) -> list[dict]:
    out = []
    for r in store.runs_table():
        # run names are validated ([A-Za-z0-9._-]), so the markdown link cannot carry markup
        out.append({**r, "run": f"[{r['run']}](/run/{r['run']})"})
    return out


def layout(store) -> html.Div:
    return html.Div([
        html.H2("Runs"),
        html.P(["Runs under ", html.Code(str(store.root)), ". ",
                dcc.Link("Compare runs", href="/compare")]),
        dash_table.DataTable(
            id=ids.RUNS_TABLE, data=rows(store),
            columns=[{"id": k, "name": n, "presentation": "markdown"} if k == "run" else {"id": k, "name": n}
                     for k, n in COLUMNS],
            sort_action="native", filter_action="native", page_size=50,
            markdown_options={"html": False, "link_target": "_self"},
            style_cell={"textAlign": "left", "fontFamily": "system-ui", "fontSize": 13},
            style_data_conditional=[
                {"if": {"filter_query": "{alerts} contains 'decoupling'"}, "backgroundColor": "#fde0e0"},
                {"if": {"filter_query": "{alerts} contains 'signal_gap'"}, "backgroundColor": "#fff3cd"},
                {"if": {"filter_query": "{status} = crashed", "column_id": "status"}, "color": "#b00020"},
            ],
        ),
        dcc.Interval(id=ids.RUNS_TICK, interval=2000),
    ])


def register(app, store) -> None:
    @app.callback(Output(ids.RUNS_TABLE, "data"), Input(ids.RUNS_TICK, "n_intervals"), prevent_initial_call=True)
    def refresh(_):
        return rows(store)
