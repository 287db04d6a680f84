"""What is drawn over a chart's series (pure, plotly in and out, shared by the dashboard and the HTML
report): each alert's onset and window with a numbered marker keyed to the alert list, the decoupling
verdict's two levels and the drop between them in points, a run's phases, and the note that replaces
a chart (or a panel) whose series the run lacks."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from diag.phases import LABELS

# every chart's layout (diag.figures draws with it too; here because a note replaces a whole chart)
LAYOUT = dict(margin={"l": 60, "r": 30, "t": 50, "b": 40}, height=340, legend={"orientation": "h", "y": -0.2})


def _color(f: dict) -> str:
    if f.get("state") == "resolved":
        return "#7f7f7f"
    return "#d62728" if f.get("severity") == "critical" else "#ff7f0e"


def numbered(findings: list[dict] | None) -> list[tuple[int, dict]]:
    """(number, finding) of every alert drawn on a chart, in the order the alert list shows them: the
    number on a chart's onset marker is the one beside the alert in the list."""
    marks = [f for f in findings or [] if f.get("severity") != "info" and f.get("onset") is not None]
    return list(enumerate(marks, start=1))


LABEL_ROWS = 4  # rows of onset markers under a chart's top edge; more crowded onsets share a marker
PLOT_UNITS = 1000  # the plot width the packing assumes (a page's plot is wider: real gaps only grow)


def _label_width(text: str) -> float:
    return 10 + 7.5 * len(text)  # a monospace-ish 11 px font in a bordered box, in PLOT_UNITS


def pack_labels(xs: list[float], texts: list[str], lo: float, hi: float) -> list[tuple[int, str, float]]:
    """(row, text, x) of each marker box, left edge at its onset, so that no two boxes overlap: boxes go
    into the first of LABEL_ROWS rows with room; one that fits none joins the last box placed ("3,4").
    Widths are estimated in PLOT_UNITS across [lo, hi]; a wider plot only widens the gaps."""
    span = max(hi - lo, 1e-9)
    edge = [-1e9] * LABEL_ROWS
    placed: list[list] = []  # [row, text, x, left_unit]
    for x, text in sorted(zip(xs, texts), key=lambda t: t[0]):
        u = (x - lo) / span * PLOT_UNITS
        row = next((r for r in range(LABEL_ROWS) if u >= edge[r] + 4), None)
        if row is None and placed:
            last = placed[-1]
            last[1] = f"{last[1]},{text}"
            edge[last[0]] = last[3] + _label_width(last[1])
            continue
        row = 0 if row is None else row
        placed.append([row, text, x, u])
        edge[row] = u + _label_width(text)
    return [(r, t, x) for r, t, x, _ in placed]


def _x_range(fig: go.Figure) -> tuple[float, float] | None:
    xs = [np.asarray(t.x, dtype=float) for t in fig.data if getattr(t, "x", None) is not None and len(t.x)]
    xs = [x[np.isfinite(x)] for x in xs if x.dtype.kind == "f" or x.dtype.kind in "iu"]
    xs = [x for x in xs if len(x)]
    return (float(min(x.min() for x in xs)), float(max(x.max() for x in xs))) if xs else None


def mark_findings(fig: go.Figure, findings: list[dict] | None, shade: bool = False) -> go.Figure:
    """Each alert's onset as a vertical line through every panel of a step-axis chart, with its number
    (the one beside it in the alert list) in a box under the chart's top edge, the alert in the box's
    hover text; with `shade`, its window too. A resolved alert is drawn grey: a run that recovered is
    not shown as failing. Boxes are packed into rows so none overlaps another at any count of alerts.
    Lines of one colour are one path shape, so a hundred onsets cost the browser three shapes."""
    marks = numbered(findings)
    shapes, notes = [], []
    for color in ("#7f7f7f", "#ff7f0e", "#d62728"):  # resolved below warnings below criticals
        mine = [f for _, f in marks if _color(f) == color]
        if not mine:
            continue
        if shade:
            windows = [f for f in mine if f.get("window_start") is not None
                       and f.get("kind") in ("decoupling", "reward_stall", "truth_gap")]
            if windows:
                shapes.append(dict(type="path", xref="x", yref="paper", layer="below", line_width=0,
                                   path=" ".join(f"M{f['window_start']},0 H{f['window_end']} V1 H{f['window_start']} Z"
                                                 for f in windows),
                                   fillcolor="rgba(127,127,127,0.10)" if color == "#7f7f7f" else "rgba(214,39,40,0.12)"))
        shapes.append(dict(type="path", xref="x", yref="paper", line={"dash": "dash", "color": color, "width": 1.5},
                           path=" ".join(f"M{f['onset']},0 V1" for f in mine)))
    if marks:
        rng = _x_range(fig) or (min(f["onset"] for _, f in marks), max(f["onset"] for _, f in marks))
        lo, hi = min(rng[0], *(f["onset"] for _, f in marks)), max(rng[1], *(f["onset"] for _, f in marks))
        by_text = {str(n): f for n, f in marks}
        for row, text, x in pack_labels([f["onset"] for _, f in marks], [str(n) for n, _ in marks], lo, hi):
            group = [by_text[t] for t in text.split(",")]
            worst = min(group, key=lambda f: {"#d62728": 0, "#ff7f0e": 1, "#7f7f7f": 2}[_color(f)])
            hover = "<br>".join(html.escape(f"#{n} [{f.get('severity')}] {f.get('kind')}: {f.get('state') or 'firing'}, onset "
                                            f"step {f['onset']}" + (f", resolved at step {f.get('resolved_step')}"
                                                                     if f.get("state") == "resolved" else ""))
                                for n, f in ((int(t), by_text[t]) for t in text.split(",")))
            notes.append(dict(xref="x", yref="paper", x=x, y=1, text=text, showarrow=False, xanchor="left",
                              yanchor="top", yshift=-2 - 18 * row, hovertext=hover, bgcolor="rgba(255,255,255,0.85)",
                              bordercolor=_color(worst), borderwidth=1, borderpad=1,
                              font={"color": _color(worst), "size": 11}, name="alert-marker"))
    if shapes:
        fig.update_layout(shapes=list(fig.layout.shapes or ()) + shapes,
                          annotations=list(fig.layout.annotations or ()) + notes)
    return fig


def _wrap(text: str, width: int = 110) -> str:
    """Escaped text broken into lines for an annotation (plotly does not wrap; it renders a few tags, so
    anything from a run's own files is escaped first)."""
    import textwrap

    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width))


def explain(fig: go.Figure, note: str | None, panels: dict[int, str] | None = None) -> go.Figure:
    """What a chart lacks, in place of empty axes (diag.missing says what): with `note`, the whole chart
    becomes that sentence; with `panels`, each named panel (row of a stacked chart) hides its axes and
    says why instead. A chart with its data is returned as it came."""
    if note:
        title = fig.layout.title.text
        fig = go.Figure()
        fig.update_layout(title=title, **{**LAYOUT, "height": 150, "margin": {"l": 60, "r": 30, "t": 50, "b": 10}})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.add_annotation(xref="paper", yref="paper", x=0, y=0.5, xanchor="left", showarrow=False, align="left",
                           text=_wrap(note), font={"size": 13, "color": "#555"}, name="missing-note")
        return fig
    for row, text in (panels or {}).items():
        axis = "" if row == 1 else str(row)
        fig.update_xaxes(visible=False, row=row, col=1) if row == 1 else None  # the step axis lives on the bottom
        fig.update_yaxes(visible=False, row=row, col=1)
        fig.add_annotation(xref=f"x{axis} domain", yref=f"y{axis} domain", x=0, y=0.5, xanchor="left", showarrow=False,
                           align="left", text=_wrap(text), font={"size": 12, "color": "#555"}, name="missing-note")
    return fig


def mark_levels(fig: go.Figure, findings: list[dict] | None, row: int = 2) -> go.Figure:
    """The decoupling verdict on the accuracy panel: the best level and the current level it was judged
    on (each over its evaluations, with a band of one standard error of the drop), and the drop between
    them labelled in points. A fall of a few points is invisible on a [0, 1] axis; its two levels are
    not. The finding shown is the one still firing, else the latest."""
    dec = [f for f in findings or [] if f.get("kind") == "decoupling" and f.get("severity") != "info"
           and (f.get("evidence") or {}).get("peak_block")]  # an episode withdrawn at the end is no verdict
    if not dec:
        return fig
    f = max(dec, key=lambda f: (f.get("state") == "firing", f.get("step") or 0))
    ev, color = f["evidence"], _color(f)
    end = "end_level" in ev  # a firing episode: where the level stands at the end of the run
    now_steps, now_level = (ev["end_block"], ev["end_level"]) if end else (ev["recent_block"], ev.get("acc_now_level"))
    se = float(ev.get("end_se" if end else "se") or 0.0)
    for name, steps, level in (("best level", ev["peak_block"], ev.get("acc_best_corrected", ev.get("acc_best_level"))),
                               ("current level", now_steps, now_level)):
        if level is None or not steps:
            continue
        x0, x1 = min(steps), max(steps)
        fig.add_trace(go.Scatter(x=[x0, x1, x1, x0, x0], y=[level - se, level - se, level + se, level + se, level - se],
                                 fill="toself", mode="lines", line={"width": 0}, fillcolor="rgba(127,127,127,0.18)",
                                 name=f"{name}: one standard error", hoverinfo="skip", showlegend=False), row=row, col=1)
        fig.add_trace(go.Scatter(x=[x0, x1], y=[level, level], mode="lines", name=name,
                                 line={"color": color, "width": 3, "dash": "solid" if name == "best level" else "dot"},
                                 hovertemplate=f"{name}: %{{y:.3f}}<extra></extra>"), row=row, col=1)
    drop = 100 * float(ev.get("end_drop" if end else "drop") or 0.0)
    axis = "" if row == 1 else str(row)
    fig.add_annotation(x=max(now_steps), y=now_level, xref=f"x{axis}", yref=f"y{axis}",
                       text=f"-{drop:.1f} points ({f.get('state')})", showarrow=True, arrowhead=2, ax=-40, ay=30,
                       font={"color": color, "size": 12})
    return fig


def mark_phases(fig: go.Figure, phases: list[dict] | None) -> go.Figure:
    """A run in phases: each SFT phase shaded, and every phase's first step labelled at the foot of the
    chart, so a reader sees where GRPO stopped, the warm-start ran, and GRPO resumed."""
    if not phases:
        return fig
    shapes, notes = [], []
    for p in phases:
        if p["phase"] == "sft":
            shapes.append(dict(type="rect", xref="x", yref="paper", layer="below", line_width=0, y0=0, y1=1,
                               x0=p["start"] - 0.5, x1=(p["end"] if p["end"] is not None else p["start"]) + 0.5,
                               fillcolor="rgba(31,119,180,0.10)"))
        shapes.append(dict(type="line", xref="x", yref="paper", x0=p["start"], x1=p["start"], y0=0, y1=1,
                           line={"dash": "dot", "color": "#1f77b4", "width": 1}))
        notes.append(dict(xref="x", yref="paper", x=p["start"], y=0, text=LABELS.get(p["phase"], p["phase"]),
                          showarrow=False, xanchor="left", yanchor="bottom", font={"color": "#1f77b4", "size": 11}))
    fig.update_layout(shapes=list(fig.layout.shapes or ()) + shapes,
                      annotations=list(fig.layout.annotations or ()) + notes)
    return fig
