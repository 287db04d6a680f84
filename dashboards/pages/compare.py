"""Compare page (/compare?runs=a,b): runs overlaid, aligned by step or by training samples seen, and a
table of what each run spent and bought (diag.budget): effective batch, generated tokens, wall time,
held-out accuracy at the budgets every selected run reached, so a remedy is judged against plain GRPO
at equal cost."""

from __future__ import annotations

from urllib.parse import parse_qs

from dash import Input, Output, dash_table, dcc, html, no_update

from dashboards import ids, query
from dashboards.pages import runs
from diag import figures
from diag.summary import training_samples


MAX_PICKED = 12  # runs a verdict picks at most: more lines than this read as one colour


def layout(store, search: str = "") -> html.Div:
    names = store.names()
    wanted = [n for n in parse_qs((search or "").lstrip("?")).get("runs", [""])[0].split(",") if n in names]
    verdicts = store.verdicts()
    return html.Div([
        html.H2("Compare runs"),
        html.Div([html.Span("pick the runs that end: "),
                  dcc.Dropdown(id=ids.COMPARE_VERDICT, placeholder="a verdict", clearable=True,
                               options=runs.verdict_options(verdicts.values()),
                               style={"width": "360px", "display": "inline-block", "verticalAlign": "middle"})]),
        # each run labelled with how it ends, so weak and strong, decoupled and clean are told apart here too
        dcc.Dropdown(id=ids.COMPARE_RUNS, options=[{"label": f"{n} ({verdicts.get(n, '')})", "value": n} for n in names],
                     value=wanted or names[:2], multi=True),
        dcc.RadioItems(id=ids.COMPARE_ALIGN, value="step", inline=True,
                       options=[{"label": " by step ", "value": "step"},
                                {"label": " by training samples seen ", "value": "samples"}]),
        dcc.Graph(id=ids.FIG_COMPARE),
        html.H3("At equal cost"),
        html.P("Held-out accuracy of each run's last evaluation within the budgets every selected run reached: "
               "the shortest wall time and the fewest generated training tokens (an SFT phase generates none)."),
        # DataTable cells are text: run names and labels from imported logs are never markup
        dash_table.DataTable(id=ids.COMPARE_BUDGET, columns=[{"id": c, "name": n} for c, n in BUDGET_COLUMNS],
                             style_cell={"textAlign": "left", "fontFamily": "monospace", "fontSize": 12}),
    ])


BUDGET_COLUMNS = (("run", "run"), ("remedy", "remedy"), ("grpo_steps", "GRPO steps"),
                  ("effective_batch", "effective batch"), ("batch", "batch"),
                  ("generated_tokens", "generated tokens"), ("seconds", "wall s"), ("accuracy_start", "accuracy start"),
                  ("accuracy_end", "accuracy end"), ("gain_per_second", "accuracy gain per wall s"), ("accuracy_at_wall", "accuracy at wall budget"),
                  ("accuracy_at_tokens", "accuracy at token budget"), ("wall_budget", "wall budget s"),
                  ("token_budget", "token budget"))


def budget_rows(store, names: list[str]) -> list[dict]:
    from diag.budget import compare as at_equal_cost

    runs = []
    for n in names or []:
        try:
            runs.append(store.get(n).run)
        except query.NotFound:
            continue
    rows = at_equal_cost(runs) if runs else []
    return [{c: (f"{v:.3g}" if isinstance(v, float) else v) for c, v in r.items()} for r in rows]


def figure(store, names: list[str], align: str):
    series = []
    for n in names or []:
        try:
            run = store.get(n).run
        except query.NotFound:
            continue
        series.append((n, run.steps, run.evals, training_samples(run)))
    return figures.compare_fig(series, align)


def picked(store, verdict: str | None) -> list[str]:
    """The runs that end `verdict` (by name, at most MAX_PICKED)."""
    return [n for n, v in sorted(store.verdicts().items()) if v == verdict][:MAX_PICKED]


def register(app, store) -> None:
    @app.callback(Output(ids.COMPARE_RUNS, "value"), Input(ids.COMPARE_VERDICT, "value"), prevent_initial_call=True)
    def by_verdict(verdict):
        return picked(store, verdict) if verdict else no_update

    @app.callback(Output(ids.FIG_COMPARE, "figure"), Input(ids.COMPARE_RUNS, "value"), Input(ids.COMPARE_ALIGN, "value"))
    def update(names, align):
        return figure(store, names, align)

    @app.callback(Output(ids.COMPARE_BUDGET, "data"), Input(ids.COMPARE_RUNS, "value"))
    def budget(names):
        return budget_rows(store, names)
