"""Run page (/run/<name>): reward vs held-out accuracy, zero-signal shares, advantages, lengths,
buckets, alerts with evidence, and a completions browser. New data appears within ~2 s (a polling
interval that reads only new segments, and redraws only when rows were added)."""

from __future__ import annotations

import importlib
import json
from urllib.parse import quote

import polars as pl
from dash import ALL, Input, Output, State, ctx, dash_table, dcc, html, no_update

from dashboards import ids, query
from diag import figures, marks, missing, phases

GRAPHS = [ids.FIG_REWARD_ACC, ids.FIG_SIGNAL, ids.FIG_ADV, ids.FIG_HEATMAP, ids.FIG_LENGTH, ids.FIG_BUCKETS]


def layout(store, name: str) -> html.Div:
    return html.Div([
        dcc.Store(id=ids.RUN_NAME, data=name),
        dcc.Store(id=ids.RUN_VERSION, data=-1),
        dcc.Store(id=ids.JUDGED_SET, data=""),  # the held-out set the drawn page judges (its name; the first set too)
        dcc.Store(id=ids.ALERT_WINDOWS, data={}),
        dcc.Store(id=ids.ALERT_FOCUS),
        html.Div(id=ids.RUN_HEADER),
        html.Div([html.Span("held-out set the verdict judges: "),
                  dcc.Dropdown(id=ids.EVAL_SET, clearable=False, style={"width": "320px", "display": "inline-block",
                                                                         "verticalAlign": "middle"}),
                  html.Code(id="eval-set-command", style={"marginLeft": "1em"})],
                 id=ids.EVAL_SET_BOX, style={"display": "none"}),
        *[dcc.Graph(id=g, config={"displaylogo": False}) for g in GRAPHS],
        html.H3("Alerts"),
        html.Div(id=ids.ALERTS),
        html.H3("Sampled completions"),
        dcc.Dropdown(id=ids.SIGNAL_FILTER, value="all", clearable=False, style={"width": "260px"},
                     options=[{"label": "all groups", "value": "all"}] +
                             [{"label": s, "value": s} for s in ("mixed", "all_fail", "all_pass", "tied")] +
                             [{"label": "rewarded but untrue", "value": query.REWARDED_UNTRUE}]),
        # DataTable renders cell text as text: completions (untrusted model output) are never markup
        # the image column alone is markdown, and only ever an image link this page builds from a content
        # hash it checked (IMAGE_REF): prompts and completions stay text
        dash_table.DataTable(id=ids.COMPLETIONS, page_size=20, markdown_options={"html": False},
                             columns=[{"id": "image", "name": "image", "presentation": "markdown"}] +
                                     [{"id": c, "name": c} for c in
                                      ("step", "group", "index", "signal", "reward", "truth", "advantage", "rewards",
                                       "prompt", "completion")],
                             style_cell={"textAlign": "left", "whiteSpace": "pre-wrap", "fontFamily": "monospace",
                                         "fontSize": 12, "maxWidth": "420px"}),
        dcc.Interval(id=ids.RUN_TICK, interval=2000),
    ])


def header(run, s: dict) -> html.Div:
    parts = [
        html.H2(f"Run {run.name}"),
        html.P(["status: ", s["status"], " | model: ",
                # the name readers know; the full path (a cache or checkpoint folder) in the tooltip
                html.Span(query.model_label(s.get("model")), title=str(run.meta.get("model_path") or s.get("model")),
                          id="model-name"),
                f" | task: {s.get('task') or '-'}"
                + (f" | imported from {run.meta['format']}" if run.meta.get("format") else "")
                + f" | reward functions: {', '.join(run.reward_funcs) or '-'} | steps: {s['steps']} | ",
                dcc.Link("per-prompt history", href=f"/run/{run.name}/prompts", id="prompts-link")]),
    ]
    if s["n_invalid"]:
        parts.append(html.P(f"{s['n_invalid']} completions had a NaN, infinite or missing reward "
                            "(excluded from their group's statistics)", id="invalid-rewards"))
    probe = run.meta.get("probe")
    if isinstance(probe, dict):
        parts.append(html.P(_probe_line("pre-flight probe", probe), id="probe"))
    parts.extend(phase_items(run))
    return html.Div(parts)


def _probe_line(what: str, probe: dict) -> str:
    G = str(probe.get("current_G"))
    dead, fail = probe.get("dead_share", {}), probe.get("all_fail_share", {})
    return (f"{what} ({probe.get('n_prompts')} prompts x {probe.get('k')} samples): mean pass rate "
            f"{_f(probe.get('mean_pass_rate'))}; predicted zero-signal share at G={G}: {_f(dead.get(G))} "
            f"(all-fail {_f(fail.get(G))}) -> {probe.get('recommendation')}")


def _f(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "-"


def phase_items(run) -> list:
    """A run in phases (the SFT fallback): each phase with its steps and why it began, the probe of the
    model the warm-start produced, and the all-fail share measured in each GRPO phase."""
    ph = phases.of(run.meta)
    if not ph:
        return []
    rows = []
    for p in ph:
        end = p["end"] if p["end"] is not None else "..."
        rows.append(html.Li(f"{phases.LABELS.get(p['phase'], p['phase'])}: steps {p['start']}-{end} ({p.get('reason', '')})",
                            className=f"phase-{p['phase']}"))
        if isinstance(p.get("probe_after"), dict):
            rows.append(html.Li(_probe_line("probe after the warm-start", p["probe_after"]), id="probe-after"))
    measured = phases.all_fail_by_phase(run.steps, ph)
    if measured:
        rows.append(html.Li("measured all-fail share per GRPO phase: " + " -> ".join(
            f"steps {m['start']}-{m['end'] if m['end'] is not None else '...'}: {_f(m['all_fail'])}" for m in measured),
            id="phase-all-fail"))
    return [html.H4("Phases"), html.Ul(rows, id="phases")]


def _live_rows(run) -> dict[tuple, dict]:
    """The newest stored row of each live alert id, keyed by (kind, onset)."""
    out: dict[tuple, dict] = {}
    if run.alerts.height:
        for a in run.alerts.sort("wall_time").to_dicts():
            out[(a["kind"], a["onset"])] = a
    return out


def gamed_panel(gamed: dict | None) -> list:
    """How the reward is being gamed (diag.explain), inside the firing reward-truth alert it explains: each
    pattern with its numbers, its share over the run and examples. Completions are untrusted model output:
    Dash renders them as text."""
    if not gamed:
        return []
    from diag.explain import headline, pattern_line

    rows = [html.H4("How the reward is being gamed"),
            html.P(headline(gamed) or gamed.get("note") or "no pattern sets the paid-untrue completions apart",
                   className="gamed-headline")]
    for i, p in enumerate(gamed["patterns"][:5], 1):
        trend = ", ".join(f"{s}: {100 * v:.0f}%" for s, v in p.get("trend", []))
        rows.append(html.Div([
            html.P(f"{i}. {pattern_line(p)}"),
            *([html.P(f"share over the run: {trend}", className="gamed-trend")] if trend else []),
            *[html.Pre(f"step {ex['step']} ({ex['times']}x) {ex['prompt']} -> {ex['completion']}"
                       + (f"\n  true: {ex['true_completion']}" if ex.get("true_completion") else ""))
              for ex in p.get("examples", [])],
        ], className="gamed-pattern"))
    return [html.Div(rows, className="gamed-patterns")]


def alert_items(run, findings, gamed: dict | None = None) -> list:
    """Each alert once, with its state, numbered as its marker on the charts (marks.numbered). The offline
    check is the verdict on the whole run; a live alert the monitor sent for the same episode adds its
    delivery, and one the check no longer finds is listed as sent live."""
    live = _live_rows(run)
    number = {id(f): n for n, f in marks.numbered(findings)}
    items = []
    for f in findings:
        a = live.pop((f["kind"], f["onset"]), None)
        state = f.get("state") or "firing"
        when = f" at step {f.get('resolved_step')}" if state == "resolved" else ""
        n = number.get(id(f))
        text = ((f"#{n} " if n else "") + f"[{f['severity']}] {f['kind']}: {state.upper()}{when} "
                f"(onset step {f['onset']}, flagged at step {f['step']})" + (" - also sent live" if a else ""))
        items.append(html.Details([
            # clicking a numbered alert scrolls to the reward chart and highlights its window there
            html.Summary(text, id={"type": ids.ALERT_SUMMARY, "index": n}) if n else html.Summary(text),
            html.P(f["message"]),
            *(gamed_panel(gamed) if gamed and state == "firing" and f["kind"] in ("truth_gap", "decoupling")
              and (gamed.get("episode") or {}).get("kind") == f["kind"] else []),
            html.Pre(json.dumps(f["evidence"], indent=1, default=str)),
            *([html.P(f"live delivery: {a.get('delivered') or '-'}")] if a else []),
        ], className=f"finding-{f['severity']} state-{state}", **({"id": f"alert-{n}"} if n else {})))
    for a in live.values():
        ev = a.get("evidence") or "{}"
        state = a.get("state") or "firing"
        items.append(html.Details([
            html.Summary(f"[{a['severity']}] {a['kind']}: {state.upper()} (onset step {a['onset']}, "
                         f"flagged at step {a['step']}) - live alert, not found by the offline check"),
            html.P(a["message"]),
            html.Pre(json.dumps(json.loads(ev), indent=1) if ev.startswith("{") else ev),
            html.P(f"live delivery: {a.get('delivered') or '-'}"),
        ], className=f"alert-{a['severity']} state-{state}"))
    return items or [html.P("No alerts.")]


def _sig3(v):
    """3 significant digits: what a reward or an advantage means to a reader."""
    return None if v is None else float(f"{v:.3g}")


def completion_rows(run, signal: str) -> list[dict]:
    c = query.completions(run, signal)
    if c.height == 0:
        return []
    rows = c.with_columns(
        pl.col("rewards").list.eval(pl.element().map_elements(lambda v: f"{v:.3g}", return_dtype=pl.String))
        .list.join(", ")).select(
        "step", "group", "index", "signal", "reward", "truth", "advantage", "rewards", "prompt", "completion").to_dicts()
    for r in rows:
        r["truth"] = {True: "true", False: "untrue", None: ""}[r["truth"]]
        r["reward"], r["advantage"] = _sig3(r["reward"]), _sig3(r["advantage"])
        r["image"] = thumbnail(run, r["prompt"])
    return rows


def thumbnail(run, prompt: str | None) -> str:
    """Markdown for the thumbnail of a prompt's first image, if the run stored one: the URL is built here
    from a 16-hex-digit content hash found in the prompt, never taken from the data as it stands."""
    from diag.recorder import IMAGE_REF

    m = IMAGE_REF.search(prompt or "")
    if m is None or not (run.path / "images" / f"{m.group(1)}.png").is_file():
        return ""
    return f"![image {m.group(1)}](/image/{quote(run.name)}/{m.group(1)}.png)"


CHARTS = dict(zip(GRAPHS, missing.CHARTS))
PENDING = 0.5  # added to the version of a page drawn before its alerts were judged

# A numbered alert clicked in the list: scroll to the reward chart and shade that alert's window there (one
# rectangle named "alert-focus", replacing the last one). Runs in the browser; the figure is not redrawn.
FOCUS_ALERT = """
function(clicks, windows) {
  const t = window.dash_clientside.callback_context.triggered;
  if (!t.length || !t[0].value) { return window.dash_clientside.no_update; }
  const n = String(JSON.parse(t[0].prop_id.split('.')[0]).index);
  const w = (windows || {})[n];
  const box = document.getElementById('%s');
  const gd = box && box.querySelector('.js-plotly-plot');
  if (!w || !gd) { return window.dash_clientside.no_update; }
  box.scrollIntoView({block: 'start'});
  const shapes = (gd.layout.shapes || []).filter(s => s.name !== 'alert-focus');
  shapes.push({type: 'rect', name: 'alert-focus', xref: 'x', yref: 'paper', x0: w[0] - 0.5, x1: w[1] + 0.5,
               y0: 0, y1: 1, layer: 'below', line: {color: '#1f77b4', width: 2}, fillcolor: 'rgba(31,119,180,0.15)'});
  window.Plotly.relayout(gd, {shapes: shapes});
  return n;
}
""" % ids.FIG_REWARD_ACC  # each graph and the chart diag.missing explains it as


def render(store, name: str, version: int, eval_set: str | None = None, tick: bool = False):
    """Everything the page shows, or None when nothing changed since `version`. A chart whose series
    this run lacks says so, and where to get them, instead of drawing empty axes. One render of a run at a
    time: a `tick` of the polling interval arriving while one runs (a long run's first drawing takes longer
    than the interval) changes nothing, the drawing under way will."""
    cached = store.get(name, refresh=False)
    if not cached.render_lock.acquire(blocking=not tick):
        return None
    try:
        return _render(store, name, version, eval_set)
    finally:
        cached.render_lock.release()


def _render(store, name: str, version: int, eval_set: str | None):
    from diag.summary import summarize

    cached = store.get(name)
    if cached.version == version or (version == cached.version + PENDING and store.judging(name)):
        return None  # nothing new; or drawn without alerts and their first judgement is still running
    run = cached.run
    sets = figures.eval_sets(run.evals)
    # the first set is the default one (check's): judged, and its findings kept, as None, whoever names it
    eval_set = eval_set if eval_set in sets[1:] else None
    # the columns the heatmap draws, not the whole groups table: a long run's page opens in a fraction of the
    # time; read before the findings, which a run's first judgement (started by the page's request) may still be making
    groups = run.columns("groups", figures.HEATMAP_COLUMNS)
    key = (cached.version, eval_set)
    if cached.last_render is not None and cached.last_render[0] == (*key, False, id(cached.findings)):
        return cached.last_render[1]  # a browser re-asking with the version it last saw: the same answer
    # what does not depend on the findings first: a run's first judgement (started by the page's request) may still be
    # running, and binning millions of group rows (polars, outside the GIL) overlaps with it
    cells, steps = figures.heatmap_cells(groups), run.steps
    notes, head = missing.notes(steps, groups, run.evals, run.meta), header(run, summarize(run))
    found = store.findings(name, eval_set, wait=False, page=True)
    key = (*key, found is None, id(found))
    if cached.last_render is not None and cached.last_render[0] == key:
        return cached.last_render[1]
    findings = found or []
    ph = phases.of(run.meta)
    figs = [figures.reward_vs_accuracy(steps, run.evals, run.reward_funcs, findings, ph, judged=eval_set),
            figures.signal_area(steps, findings, ph), figures.advantage_fig(steps, findings),
            figures.group_heatmap(groups, findings=findings, cells=cells), figures.length_fig(steps, findings),
            figures.buckets_fig(run.evals)]
    out = {
        # drawn without alerts while they are judged: the next tick draws again once they are in
        "version": cached.version + (PENDING if found is None else 0),
        "judged": eval_set or (sets[0] if sets else ""),
        "header": head,
        "figs": [marks.explain(f, *missing.for_chart(notes, CHARTS[g])) for g, f in zip(GRAPHS, figs)],
        "alerts": alert_items(run, findings, gamed(cached, findings)) if found is not None else [judging_note(run)],
        "windows": alert_windows(findings),
        "sets": sets,
    }
    cached.last_render = (key, out)
    return out


def gamed(cached, findings: list[dict]) -> dict | None:
    """diag.explain on the run while a reward-truth alert fires, once per version of the run."""
    if not any(f.get("state") == "firing" and f["kind"] in ("truth_gap", "decoupling") and f["severity"] != "info"
               for f in findings):
        return None
    kept = cached.gamed
    if kept is not None and kept[0] == cached.version:
        return kept[1]
    from diag.explain import explain_run

    out = explain_run(cached.run, findings=findings)
    cached.gamed = (cached.version, out)
    return out


def warm_up() -> None:
    """Draw each chart once on an empty run when the server starts: plotly sets up its property validators
    on first use (half a second), which the first page a user opens would otherwise pay."""
    from diag import schema

    steps, evals = schema.empty("steps"), schema.empty("evals")
    finding = [{"kind": "decoupling", "severity": "warning", "step": 1, "onset": 1, "window_start": 1,
                "window_end": 1, "message": "", "evidence": {}}]
    for f in (figures.reward_vs_accuracy(steps, evals, [], finding, []), figures.signal_area(steps, finding, []),
              figures.advantage_fig(steps, finding), figures.group_heatmap(schema.empty("groups"), findings=finding),
              figures.length_fig(steps, finding), figures.buckets_fig(evals)):
        f.to_json()
    importlib.import_module("sklearn.feature_extraction.text")  # diag.explain's vectoriser: a second to import


def judging_note(run) -> html.P:
    return html.P(f"Judging this run's {run.evals.height:,} evaluations and {run.steps.height:,} steps for the first "
                  "time: the alerts appear here and on the charts when the detectors finish (the result is kept "
                  "beside the run, so the next open reads it).", id=ids.JUDGING)


def alert_windows(findings: list[dict]) -> dict[str, list[int]]:
    """{number: [first step, last step]} of each numbered alert's window (its onset alone when it has none)."""
    out = {}
    for n, f in marks.numbered(findings):
        lo = f.get("window_start") if f.get("window_start") is not None else f["onset"]
        hi = f.get("window_end") if f.get("window_end") is not None else max(lo, f.get("step") or lo)
        out[str(n)] = [int(lo), int(hi)]
    return out


def register(app, store) -> None:
    @app.callback(
        [Output(ids.RUN_VERSION, "data"), Output(ids.JUDGED_SET, "data"), Output(ids.RUN_HEADER, "children"),
         *[Output(g, "figure") for g in GRAPHS], Output(ids.ALERTS, "children"),
         Output(ids.EVAL_SET, "options"), Output(ids.EVAL_SET_BOX, "style"), Output(ids.ALERT_WINDOWS, "data")],
        Input(ids.RUN_TICK, "n_intervals"), Input(ids.EVAL_SET, "value"),
        State(ids.RUN_NAME, "data"), State(ids.RUN_VERSION, "data"), State(ids.JUDGED_SET, "data"),
    )
    def tick(_, eval_set, name, version, judged):
        if ctx.triggered_id == ids.EVAL_SET and (eval_set if eval_set else "") != (judged or ""):
            version = -1  # another held-out set judged: everything is drawn again
        out = render(store, name, version, eval_set, tick=ctx.triggered_id == ids.RUN_TICK)
        if out is None:
            return [no_update] * (7 + len(GRAPHS))
        sets = out["sets"]
        return [out["version"], out["judged"], out["header"], *out["figs"], out["alerts"],
                [{"label": s, "value": s} for s in sets], {"display": "block" if len(sets) > 1 else "none"},
                out["windows"]]

    # in the browser: no round trip to scroll and draw one rectangle
    app.clientside_callback(FOCUS_ALERT, Output(ids.ALERT_FOCUS, "data"),
                            Input({"type": ids.ALERT_SUMMARY, "index": ALL}, "n_clicks"), State(ids.ALERT_WINDOWS, "data"),
                            prevent_initial_call=True)

    @app.callback(Output(ids.EVAL_SET, "value"), Input(ids.EVAL_SET, "options"), State(ids.EVAL_SET, "value"))
    def default_set(options, value):
        if value is not None or not options:
            return no_update
        return options[0]["value"]  # the first recorded set: the one the run trains for, check's default

    @app.callback(Output("eval-set-command", "children"), Input(ids.EVAL_SET, "value"), State(ids.RUN_NAME, "data"))
    def command(eval_set, name):
        return f"grpo-diag check {store.root / name} --eval-set {eval_set}" if eval_set else ""

    @app.callback(Output(ids.COMPLETIONS, "data"), Input(ids.SIGNAL_FILTER, "value"), Input(ids.RUN_VERSION, "data"),
                  State(ids.RUN_NAME, "data"))
    def completions(signal, _version, name):
        return completion_rows(store.get(name, refresh=False).run, signal or "all")
