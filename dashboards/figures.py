"""Pure figure functions: polars frames in, plotly figures out (no I/O, no Dash)."""

from __future__ import annotations

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from diag.schema import SIGNALS
from diag.summary import accuracy_series

COLORS = {"all_fail": "#d62728", "all_pass": "#2ca02c", "tied": "#9467bd", "mixed": "#1f77b4"}
LAYOUT = dict(margin={"l": 50, "r": 30, "t": 40, "b": 40}, height=320, legend={"orientation": "h", "y": -0.2})
MAX_POINTS = 2000  # long runs are decimated for drawing; statistics always use every step


def _thin(df: pl.DataFrame) -> pl.DataFrame:
    """Keep at most MAX_POINTS rows (every k-th) so a 100k-step run still draws in a blink."""
    if df.height <= MAX_POINTS:
        return df
    return df.gather_every(int(np.ceil(df.height / MAX_POINTS)))


def accuracy_frame(evals: pl.DataFrame) -> pl.DataFrame:
    """step, value of the overall greedy held-out accuracy (the first eval set)."""
    return accuracy_series(evals)


def reward_vs_accuracy(steps: pl.DataFrame, evals: pl.DataFrame, reward_funcs: list[str],
                       findings: list[dict] | None = None) -> go.Figure:
    """Training reward (total and per component) and held-out accuracy on one step axis; decoupling
    windows shaded, onsets marked."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    s = _thin(steps.sort("step")) if steps.height else steps
    if s.height and "reward_mean" in s.columns:
        fig.add_trace(go.Scattergl(x=s["step"].to_numpy(), y=s["reward_mean"].to_numpy(), name="reward (total)",
                                   mode="lines", line={"width": 1.5, "color": "#1f77b4"}), secondary_y=False)
        if "func_mean" in s.columns and len(reward_funcs) > 1 and s["func_mean"].dtype != pl.Null:
            for j, name in enumerate(reward_funcs):
                y = s["func_mean"].list.get(j, null_on_oob=True).to_numpy()
                fig.add_trace(go.Scattergl(x=s["step"].to_numpy(), y=y, name=f"reward: {name}", mode="lines",
                                           line={"width": 1, "dash": "dot"}), secondary_y=False)
    acc = accuracy_frame(evals)
    if acc.height:
        fig.add_trace(go.Scatter(x=acc["step"].to_numpy(), y=acc["value"].to_numpy(), name="held-out accuracy",
                                 mode="lines+markers", line={"color": "#ff7f0e", "width": 2.5}), secondary_y=True)
    for f in findings or []:
        if f.get("kind") in ("decoupling", "reward_stall") and f.get("window_start") is not None:
            color = "rgba(214,39,40,0.12)" if f["kind"] == "decoupling" else "rgba(255,165,0,0.12)"
            fig.add_vrect(x0=f["window_start"], x1=f["window_end"], fillcolor=color, line_width=0)
            fig.add_vline(x=f["onset"], line_dash="dash", line_color="#d62728",
                          annotation_text=f"{f['kind']} onset", annotation_position="top left")
    fig.update_layout(title="Training reward vs held-out accuracy", **LAYOUT)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="reward", secondary_y=False)
    fig.update_yaxes(title_text="held-out accuracy", secondary_y=True, range=[0, 1])
    return fig


def signal_area(steps: pl.DataFrame) -> go.Figure:
    """Share of groups by signal class, stacked: all_fail / all_pass / tied / mixed."""
    fig = go.Figure()
    s = _thin(steps.sort("step")) if steps.height else steps
    cols = {"all_fail": "frac_all_fail", "all_pass": "frac_all_pass", "tied": "frac_tied"}
    if s.height and all(c in s.columns for c in cols.values()) and s["frac_all_fail"].null_count() < s.height:
        x = s["step"].to_numpy()
        dead = np.zeros(s.height)
        for label, col in cols.items():
            y = s[col].fill_null(0).to_numpy()
            dead += y
            fig.add_trace(go.Scatter(x=x, y=y, name=label, stackgroup="one", mode="lines",
                                     line={"width": 0.5, "color": COLORS[label]}))
        fig.add_trace(go.Scatter(x=x, y=np.clip(1 - dead, 0, 1), name="mixed (learning signal)", stackgroup="one",
                                 mode="lines", line={"width": 0.5, "color": COLORS["mixed"]}))
        nopass = s["frac_no_pass"] if "frac_no_pass" in s.columns else None
        if nopass is not None and nopass.null_count() < s.height and (nopass.fill_null(0) - s["frac_all_fail"]).max() > 1e-9:
            # a format (or partial-credit) reward makes failing groups "mixed": show how many fail the task
            fig.add_trace(go.Scatter(x=x, y=nopass.to_numpy(), name="no completion passes the verifier",
                                     mode="lines", line={"width": 2, "dash": "dot", "color": "#000000"}))
    elif s.height and "frac_zero_signal" in s.columns and s["frac_zero_signal"].null_count() < s.height:
        fig.add_trace(go.Scatter(x=s["step"].to_numpy(), y=s["frac_zero_signal"].to_numpy(), name="zero-signal (trainer log)",
                                 mode="lines", fill="tozeroy", line={"color": COLORS["tied"]}))
    fig.update_layout(title="Zero-signal groups", yaxis={"range": [0, 1], "title": "share of groups"}, **LAYOUT)
    return fig


def _dual_axis(steps: pl.DataFrame, left: tuple[str, str], right: tuple[str, str], title: str) -> go.Figure:
    """Two per-step series on one step axis: (column, label) on the left and on the right y-axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    s = _thin(steps.sort("step")) if steps.height else steps
    for (col, label), secondary in ((left, False), (right, True)):
        if s.height and col in s.columns:
            fig.add_trace(go.Scattergl(x=s["step"].to_numpy(), y=s[col].to_numpy(), name=label, mode="lines"),
                          secondary_y=secondary)
    fig.update_layout(title=title, **LAYOUT)
    return fig


def advantage_fig(steps: pl.DataFrame) -> go.Figure:
    return _dual_axis(steps, ("adv_var_mean", "advantage variance"),
                      ("effective_batch", "effective batch (completions in mixed groups)"),
                      "Advantage variance and effective batch")


def group_heatmap(groups: pl.DataFrame, value: str = "reward_std", max_steps: int = 400) -> go.Figure:
    """Per-group distribution over steps: a [group x step] heatmap of one statistic (train mode)."""
    fig = go.Figure()
    if groups.height and value in groups.columns:
        g = groups.filter(pl.col("mode") == "train")
        steps = g["step"].unique().sort()
        if steps.len() > max_steps:
            keep = steps.gather_every(int(np.ceil(steps.len() / max_steps)))
            g = g.filter(pl.col("step").is_in(keep.implode()))
        if g.height:
            wide = g.pivot(on="step", index="group", values=value, aggregate_function="first").sort("group")
            z = wide.drop("group").to_numpy().astype(float)
            fig.add_trace(go.Heatmap(z=z, x=[int(c) for c in wide.columns[1:]], y=wide["group"].to_numpy(),
                                     colorscale="Viridis", colorbar={"title": value}))
    fig.update_layout(title=f"Per-group {value} (rows: groups, columns: steps)", **LAYOUT)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="group")
    return fig


def length_fig(steps: pl.DataFrame) -> go.Figure:
    return _dual_axis(steps, ("len_mean", "mean completion length"), ("frac_clipped", "cut at length cap"),
                      "Completion length")


def buckets_fig(evals: pl.DataFrame) -> go.Figure:
    fig = go.Figure()
    if evals.height:
        e = evals.filter((pl.col("metric") == "accuracy") & (pl.col("bucket") != "all")).sort("step")
        for (bucket,), part in e.group_by(["bucket"], maintain_order=True):
            fig.add_trace(go.Scatter(x=part["step"].to_numpy(), y=part["value"].to_numpy(), name=str(bucket),
                                     mode="lines+markers"))
    fig.update_layout(title="Held-out accuracy by difficulty bucket", yaxis={"range": [0, 1]}, **LAYOUT)
    return fig


def compare_fig(series: list[tuple[str, pl.DataFrame, pl.DataFrame, pl.DataFrame]], align: str = "step") -> go.Figure:
    """Held-out accuracy (solid) and training reward (dotted) of several runs on one axis.

    series: (run name, steps, evals, samples) with samples = step -> cumulative training samples."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("held-out accuracy", "training reward"),
                        vertical_spacing=0.12)
    palette = plotly.colors.qualitative.Plotly
    for i, (name, steps, evals, samples) in enumerate(series):
        color = palette[i % len(palette)]  # one colour per run in both panels
        acc = accuracy_frame(evals)
        s = _thin(steps.sort("step")) if steps.height else steps
        if align == "samples" and samples.height:
            acc = acc.join(samples, on="step", how="left").with_columns(pl.col("samples").alias("x"))
            if s.height:
                s = s.join(samples, on="step", how="left").with_columns(pl.col("samples").alias("x"))
        else:
            acc = acc.with_columns(pl.col("step").alias("x"))
            if s.height:
                s = s.with_columns(pl.col("step").alias("x"))
        if acc.height:
            fig.add_trace(go.Scatter(x=acc["x"].to_numpy(), y=acc["value"].to_numpy(), name=f"{name}", mode="lines+markers",
                                     legendgroup=name, line={"color": color}), row=1, col=1)
        if s.height and "reward_mean" in s.columns:
            fig.add_trace(go.Scattergl(x=s["x"].to_numpy(), y=s["reward_mean"].to_numpy(), name=f"{name} reward",
                                       mode="lines", line={"width": 1, "color": color}, legendgroup=name,
                                       showlegend=False), row=2, col=1)
    fig.update_layout(height=560, margin={"l": 50, "r": 30, "t": 50, "b": 40}, title="Compare runs")
    fig.update_xaxes(title_text="training samples seen" if align == "samples" else "step", row=2, col=1)
    return fig


def signal_counts(groups: pl.DataFrame) -> dict[str, int]:
    if groups.height == 0:
        return {s: 0 for s in SIGNALS}
    c = groups.group_by("signal").len()
    got = dict(zip(c["signal"].to_numpy(), c["len"].to_numpy()))
    return {s: int(got.get(s, 0)) for s in SIGNALS}
