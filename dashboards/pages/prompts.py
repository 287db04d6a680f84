"""Prompts page (/run/<name>/prompts): every prompt's history, dead prompts (no learning signal at
their last visits), revived ones, and what skipping prompts dead k visits in a row would have saved on
this run (GRESO-style, judged after the fact)."""

from __future__ import annotations

import polars as pl
from dash import Input, Output, dash_table, dcc, html

from dashboards import ids
from diag import figures, prompts

COLUMNS = ("dead_streak", "visits", "dead_visits", "revived", "last_signal", "last_pass_rate", "first_step",
           "last_step", "prompt")


def layout(store, name: str) -> html.Div:
    return html.Div([
        dcc.Store(id=ids.PROMPTS_NAME, data=name),
        html.H2(f"Prompts of run {name}"),
        dcc.Link("back to the run", href=f"/run/{name}"),
        html.Div([html.Label("dead for k visits in a row, k = "),
                  dcc.Dropdown(id=ids.PROMPTS_K, value=2, clearable=False, style={"width": "90px"},
                               options=[{"label": str(k), "value": k} for k in (1, 2, 3, 4)])],
                 style={"display": "flex", "alignItems": "center", "gap": "8px"}),
        html.Div(id=ids.PROMPTS_SUMMARY),
        dcc.Graph(id=ids.FIG_PROMPTS, config={"displaylogo": False}),
        # DataTable renders cell text as text: prompts (from the dataset or an imported log) are never markup
        dash_table.DataTable(id=ids.PROMPTS_TABLE, page_size=25, sort_action="native", filter_action="native",
                             columns=[{"id": c, "name": "last pass %" if c == "last_pass_rate" else c.replace("_", " ")}
                                      for c in COLUMNS],
                             style_cell={"textAlign": "left", "whiteSpace": "pre-wrap", "fontFamily": "monospace",
                                         "fontSize": 12, "maxWidth": "520px"}),
    ])


def _pct(v) -> str:
    return "not available" if v is None else f"{v:.0%}"


def summary_text(s: dict, k: int) -> list:
    skip = s["skip"]
    lines = [html.P(f"{s['prompts']} prompts trained on, {s['repeat_visits']} of them seen more than once; "
                    f"dead at their last visit: {_pct(s['dead_now_share'])}; dead {k} visits in a row: "
                    f"{_pct(s[f'dead_{k}_in_a_row_share'])}; revived (dead, then a learning signal later): "
                    f"{s['revived']}.")]
    if not skip["enough_data"]:
        lines.append(html.P(f"Skipping prompts dead {k} visits in a row cannot be judged yet: no prompt has "
                            f"been visited more than {k} times.", id="prompts-skip"))
    else:
        lines.append(html.P(
            f"Had prompts dead {k} visits in a row been skipped, {skip['skipped']} of {skip['judged']} later visits "
            f"would not have been generated ({_pct(skip['completions_saved_share'])} of all completions); "
            f"{_pct(skip['precision'])} of them were indeed dead again, and {skip['lost_signal']} learning "
            "signal(s) would have been lost.", id="prompts-skip"))
    live = s.get("skipped_live")
    if live is not None:
        lines.append(html.P(
            f"This run skipped dead prompts while training: {live['skipped']} group(s) not generated "
            f"({live['completions_saved']} completions saved), {live['unreplaced']} dead prompt(s) kept for want of a "
            f"live replacement; {live['known_dead_at_end']} prompts known dead at the end.", id="prompts-skipped-live"))
    return lines


def render(store, name: str, k: int) -> tuple:
    hist = prompts.history(store.get(name).run.groups)
    tab = prompts.table(hist)
    s = {**prompts.summary(hist, k, tab), "skipped_live": prompts.skipped_live(store.get(name).run.scalars)}
    rows = tab.with_columns((100 * pl.col("last_pass_rate")).round(1)).select(COLUMNS).to_dicts()
    for r in rows:
        r["revived"] = "yes" if r["revived"] else ""
    return summary_text(s, k), figures.dead_by_visit(hist), rows


def register(app, store) -> None:
    @app.callback(Output(ids.PROMPTS_SUMMARY, "children"), Output(ids.FIG_PROMPTS, "figure"),
                  Output(ids.PROMPTS_TABLE, "data"), Input(ids.PROMPTS_NAME, "data"), Input(ids.PROMPTS_K, "value"))
    def _update(name, k):
        return render(store, name, int(k or 2))
