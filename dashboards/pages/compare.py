"""Compare page (/compare?runs=a,b): runs overlaid, aligned by step or by training samples seen."""

from __future__ import annotations

from urllib.parse import parse_qs

from dash import Input, Output, dcc, html

from dashboards import ids, query
from diag import figures
from diag.summary import training_samples


def layout(store, search: str = "") -> html.Div:
    names = store.names()
    wanted = [n for n in parse_qs((search or "").lstrip("?")).get("runs", [""])[0].split(",") if n in names]
    return html.Div([
        html.H2("Compare runs"),
        dcc.Dropdown(id=ids.COMPARE_RUNS, options=[{"label": n, "value": n} for n in names],
                     value=wanted or names[:2], multi=True),
        dcc.RadioItems(id=ids.COMPARE_ALIGN, value="step", inline=True,
                       options=[{"label": " by step ", "value": "step"},
                                {"label": " by training samples seen ", "value": "samples"}]),
        dcc.Graph(id=ids.FIG_COMPARE),
    ])


def figure(store, names: list[str], align: str):
    series = []
    for n in names or []:
        try:
            run = store.get(n).run
        except query.NotFound:
            continue
        series.append((n, run.steps, run.evals, training_samples(run)))
    return figures.compare_fig(series, align)


def register(app, store) -> None:
    @app.callback(Output(ids.FIG_COMPARE, "figure"), Input(ids.COMPARE_RUNS, "value"), Input(ids.COMPARE_ALIGN, "value"))
    def update(names, align):
        return figure(store, names, align)
