"""Pure figure functions shared by the dashboard and the HTML report: polars frames in, plotly figures
out (no I/O, no Dash). Every number drawn comes from the read model (diag.summary); only the drawing
is decided here."""

from __future__ import annotations

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from diag.marks import LAYOUT, mark_findings, mark_levels, mark_phases
from diag.schema import SIGNALS
from diag.summary import accuracy_series, bucket_series, once_per_step, signal_shares

COLORS = {"all_fail": "#d62728", "all_pass": "#2ca02c", "tied": "#9467bd", "mixed": "#1f77b4"}
# About two points per pixel column of a graph: what a screen can show (W&B and TensorBoard cap a
# series for the same reason). Statistics always use every step; only drawing is decimated.
MAX_POINTS = 1000
MARKERS_UP_TO = 60  # draw markers on a series only where points are few enough to be seen one by one
SHARE_AXIS = dict(range=[0, 1], tickformat=".0%")


def decimate(x: np.ndarray, y: np.ndarray, n_out: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """MinMax-LTTB down to n_out points (tsdownsample): keeps every spike a reader must see, unlike
    taking every k-th step. NaN-aware, so gaps in a series stay gaps."""
    if len(x) <= n_out:
        return x, y
    from tsdownsample import NaNMinMaxLTTBDownsampler

    idx = NaNMinMaxLTTBDownsampler().downsample(np.asarray(x, dtype=float), np.asarray(y, dtype=float), n_out=n_out)
    return x[idx], y[idx]


def _xy(df: pl.DataFrame, col: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """A series as drawn: decimated, and sent as 32-bit arrays (plotly ships numpy arrays as typed
    binary; half the bytes of 64-bit, and far more precision than a pixel shows)."""
    xs, ys = decimate(df[x].to_numpy(), df[col].cast(pl.Float64).to_numpy())
    return (xs.astype(np.int32) if xs.dtype.kind in "iu" and (len(xs) == 0 or abs(xs).max() < 2**31) else xs,
            ys.astype(np.float32))


def _mode(x) -> str:
    return "lines+markers" if len(x) <= MARKERS_UP_TO else "lines"


def _has(df: pl.DataFrame, col: str) -> bool:
    return df.height > 0 and col in df.columns and df[col].null_count() < df.height


SET_COLORS = ("#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#bcbd22")


def eval_sets(evals: pl.DataFrame) -> list[str]:
    """The held-out sets with an accuracy series, in the order first recorded (the trained set first)."""
    if evals.height == 0:
        return []
    e = evals.filter((pl.col("metric") == "accuracy") & (pl.col("bucket") == "all"))
    return list(dict.fromkeys(e["eval_set"].to_list()))


def _stacked(top: str, bottom: str) -> go.Figure:
    """Two panels on one shared step axis: each quantity on an axis of its own, never a dual y axis."""
    return make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, subplot_titles=(top, bottom))


def reward_vs_accuracy(steps: pl.DataFrame, evals: pl.DataFrame, reward_funcs: list[str],
                       findings: list[dict] | None = None, phases: list[dict] | None = None,
                       judged: str | None = None) -> go.Figure:
    """Training reward (total and per component) above held-out accuracy on a [0, 1] axis of its own,
    one shared step axis; with a truth function, the training completions' truth rate per step on the
    accuracy panel; alert windows shaded (grey once resolved), onsets marked on both panels. With several
    held-out sets, the one the verdict judged (`judged`, else the decoupling finding's, else the first)
    is named so in the legend. Two buttons set the accuracy axis: [0, 1] (the default: a fall is seen at
    its true size) or zoomed to the data (a fall of a few points is seen at all); the axis title says which."""
    fig = _stacked("training reward", "held-out accuracy (strict verifier)")
    s = once_per_step(steps)
    if _has(s, "reward_mean"):
        x, y = _xy(s, "reward_mean")
        fig.add_trace(go.Scatter(x=x, y=y, name="reward (total)", mode="lines",
                                 line={"width": 1.5, "color": "#1f77b4"}), row=1, col=1)
        if "func_mean" in s.columns and len(reward_funcs) > 1 and s["func_mean"].dtype != pl.Null:
            for j, name in enumerate(reward_funcs):
                part = s.select("step", pl.col("func_mean").list.get(j, null_on_oob=True).alias("f"))
                x, y = _xy(part, "f")
                fig.add_trace(go.Scatter(x=x, y=y, name=f"reward: {name}", mode="lines",
                                         line={"width": 1, "dash": "dot"}), row=1, col=1)
    if _has(s, "truth_rate"):  # the training completions' own truth, on the accuracy axis: the gap is in steps
        x, y = _xy(s, "truth_rate")
        fig.add_trace(go.Scatter(x=x, y=y, name="truth rate (training completions)", mode="lines",
                                 line={"width": 1.2, "color": "#2ca02c"}, opacity=0.8), row=2, col=1)
    sets = eval_sets(evals)
    judged = judged or next((f["evidence"].get("eval_set") for f in findings or [] if f.get("kind") == "decoupling"
                             and isinstance(f.get("evidence"), dict) and f["evidence"].get("eval_set")),
                            sets[0] if sets else None)
    for i, name in enumerate(sets):  # one curve per held-out set: the trained set first, in orange
        acc = accuracy_series(evals, name)
        if acc.height:
            x, y = _xy(acc, "value")
            label = f" ({name}{', judged' if name == judged else ''})" if len(sets) > 1 else ""
            fig.add_trace(go.Scatter(x=x, y=y, name="held-out accuracy" + label,
                                     mode=_mode(x), line={"color": SET_COLORS[i % len(SET_COLORS)],
                                                          "width": 2.5 if i == 0 else 1.8}), row=2, col=1)
    mark_findings(fig, findings, shade=True)
    mark_levels(fig, findings)
    mark_phases(fig, phases)
    fig.update_layout(title="Training reward and held-out accuracy", **{**LAYOUT, "height": 480})
    fig.update_yaxes(title_text="reward", row=1, col=1)
    fig.update_yaxes(title_text=ACC_TITLES[0], row=2, col=1, **SHARE_AXIS)
    fig.update_xaxes(title_text="step", row=2, col=1)
    if sets:
        fig.update_layout(updatemenus=[dict(
            type="buttons", direction="right", x=1, xanchor="right", y=0.44, yanchor="bottom", showactive=True,
            pad={"r": 0, "t": 0}, font={"size": 10}, active=0,
            buttons=[dict(label="accuracy 0-1", method="relayout",
                          args=[{"yaxis2.range": [0, 1], "yaxis2.autorange": False, "yaxis2.title.text": ACC_TITLES[0]}]),
                     dict(label="zoom to data", method="relayout",
                          args=[{"yaxis2.autorange": True, "yaxis2.title.text": ACC_TITLES[1]}])])])
    return fig


ACC_TITLES = ("accuracy (axis 0-1)", "accuracy (zoomed to the data)")


def signal_area(steps: pl.DataFrame, findings: list[dict] | None = None, phases: list[dict] | None = None) -> go.Figure:
    """Share of groups by signal class, stacked: all_fail / all_pass / tied / mixed."""
    fig = make_subplots(rows=1, cols=1)
    shares = signal_shares(steps)
    if shares is not None:
        if shares.height > MAX_POINTS:  # stacked areas need one x for every class: mean per bin of steps
            shares = _binned(shares, [c for c in shares.columns if c != "step"])
        x = shares["step"].to_numpy()
        for label in ("all_fail", "all_pass", "tied"):
            fig.add_trace(go.Scatter(x=x, y=shares[label].to_numpy(), name=label, stackgroup="one", mode="lines",
                                     line={"width": 0.5, "color": COLORS[label]}))
        fig.add_trace(go.Scatter(x=x, y=shares["mixed"].to_numpy(), name="mixed (learning signal)", stackgroup="one",
                                 mode="lines", line={"width": 0.5, "color": COLORS["mixed"]}))
        if "no_pass" in shares.columns and (shares["no_pass"].fill_null(0) - shares["all_fail"]).max() > 1e-9:
            # a format (or partial-credit) reward makes failing groups "mixed": show how many fail the task
            fig.add_trace(go.Scatter(x=x, y=shares["no_pass"].to_numpy(), name="no completion passes the verifier",
                                     mode="lines", line={"width": 2, "dash": "dot", "color": "#000000"}))
    elif _has(s := once_per_step(steps), "frac_zero_signal"):  # an imported log: the trainer's share only
        x, y = _xy(s, "frac_zero_signal")
        fig.add_trace(go.Scatter(x=x, y=y, name="zero-signal (trainer log)", mode="lines", fill="tozeroy",
                                 line={"color": COLORS["tied"]}))
    mark_findings(fig, findings)
    mark_phases(fig, phases)
    fig.update_layout(title="Zero-signal groups", **LAYOUT)
    fig.update_yaxes(title_text="share of groups", **SHARE_AXIS)
    fig.update_xaxes(title_text="step")
    return fig


def bin_index(n_steps: int, n_out: int) -> pl.Expr:
    """The bin of each row's step: equal bins of consecutive distinct steps, at most n_out of them."""
    width = max(1, -(-n_steps // n_out))
    return ((pl.col("step").rank("dense") - 1) // width).cast(pl.Int64).alias("bin")


def _binned(df: pl.DataFrame, cols: list[str], n_out: int = MAX_POINTS // 2) -> pl.DataFrame:
    """Mean of each column over equal bins of steps (x = the bin's first step)."""
    return (df.with_columns(bin_index(df["step"].n_unique(), n_out)).group_by("bin")
            .agg(pl.col("step").min(), *[pl.col(c).mean() for c in cols]).sort("bin").drop("bin"))


def _two_panels(steps: pl.DataFrame, top: tuple[str, str], bottom: tuple[str, str], title: str,
                findings: list[dict] | None, bottom_is_share: bool = False) -> go.Figure:
    """Two per-step series, each in a panel of its own on one shared step axis."""
    fig = _stacked(top[1], bottom[1])
    s = once_per_step(steps)
    for row, (col, label) in ((1, top), (2, bottom)):
        if _has(s, col):
            x, y = _xy(s, col)
            fig.add_trace(go.Scatter(x=x, y=y, name=label, mode="lines"), row=row, col=1)
    mark_findings(fig, findings)
    fig.update_layout(title=title, **{**LAYOUT, "height": 420})
    if bottom_is_share:
        fig.update_yaxes(row=2, col=1, **SHARE_AXIS)
    fig.update_xaxes(title_text="step", row=2, col=1)
    return fig


def advantage_fig(steps: pl.DataFrame, findings: list[dict] | None = None) -> go.Figure:
    return _two_panels(steps, ("adv_var_mean", "advantage variance (mean over groups)"),
                       ("effective_batch", "effective batch (completions in mixed groups)"),
                       "Advantage variance and effective batch", findings)


HEATMAP_VALUE = "reward_std"  # the per-group statistic the run page's heatmap shows
HEATMAP_COLUMNS = ["step", "group", "mode", HEATMAP_VALUE]  # the groups table's columns the heatmap reads


def group_heatmap(groups: pl.DataFrame, value: str = HEATMAP_VALUE, max_columns: int = 200,
                  findings: list[dict] | None = None, cells: tuple | None = None) -> go.Figure:
    """Per-group distribution over steps: a [group x step] heatmap of one statistic (train mode). Long
    runs are binned (the mean over each bin of consecutive steps), never subsampled: a dead stretch
    shorter than a bin still shows as a lower mean. `cells`: heatmap_cells(groups, ...) computed before
    (the run page bins millions of group rows while the detectors judge)."""
    fig = go.Figure()
    cells = heatmap_cells(groups, value, max_columns) if cells is None else cells
    if cells:
        z, x, y = cells
        fig.add_trace(go.Heatmap(z=np.round(z, 4).astype(np.float32), x=x, y=y,  # 4 decimals: what a colour shows
                                 colorscale="Viridis", colorbar={"title": value}))
    mark_findings(fig, findings)
    fig.update_layout(title=f"Per-group {value} (rows: groups, columns: steps)", **LAYOUT)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="group")
    return fig


def heatmap_cells(groups: pl.DataFrame, value: str = HEATMAP_VALUE, max_columns: int = 200) -> tuple:
    """(z, x, y) of group_heatmap's train-mode grid, or () when there is nothing to draw."""
    if not (groups.height and value in groups.columns):
        return ()
    g = groups.filter(pl.col("mode") == "train").select("step", "group", value)
    return _bin_grid(g, value, max_columns) if g.height else ()


def _bin_grid(g: pl.DataFrame, value: str, max_columns: int):
    """[groups x bins] means of `value` over the step bins of `bin_index`, labelled by each bin's first
    step; NaN where a cell has no value. One polars group-by: millions of group rows cost a fraction
    of a second."""
    cells = (g.lazy().select("step", "group", pl.col(value).cast(pl.Float64).alias("v"))
             .with_columns(bin_index(g["step"].n_unique(), max_columns))
             .group_by("group", "bin").agg(pl.col("v").mean(), pl.col("step").min().alias("first")).collect())
    rows = cells["group"].unique().sort().to_numpy()
    z = np.full((len(rows), int(cells["bin"].max()) + 1), np.nan)
    z[np.searchsorted(rows, cells["group"].to_numpy()), cells["bin"].to_numpy()] = cells["v"].fill_null(np.nan).to_numpy()
    x = cells.group_by("bin").agg(pl.col("first").min()).sort("bin")["first"].to_numpy()
    return z, x, rows


def length_fig(steps: pl.DataFrame, findings: list[dict] | None = None) -> go.Figure:
    return _two_panels(steps, ("len_mean", "mean completion length (tokens)"),
                       ("frac_clipped", "share cut at the length cap"), "Completion length", findings,
                       bottom_is_share=True)


def buckets_fig(evals: pl.DataFrame) -> go.Figure:
    fig = go.Figure()
    for (bucket,), part in bucket_series(evals).group_by(["bucket"], maintain_order=True):
        x, y = _xy(part, "value")
        fig.add_trace(go.Scatter(x=x, y=y, name=str(bucket), mode=_mode(x)))
    fig.update_layout(title="Held-out accuracy by difficulty bucket", **LAYOUT)
    fig.update_yaxes(title_text="accuracy", **SHARE_AXIS)
    fig.update_xaxes(title_text="step")
    return fig


def compare_fig(series: list[tuple[str, pl.DataFrame, pl.DataFrame, pl.DataFrame]], align: str = "step") -> go.Figure:
    """Held-out accuracy (solid) and training reward (dotted) of several runs on one axis.

    series: (run name, steps, evals, samples) with samples = step -> cumulative training samples."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("held-out accuracy", "training reward"),
                        vertical_spacing=0.12)
    palette = plotly.colors.qualitative.Plotly
    for i, (name, steps, evals, samples) in enumerate(series):
        color = palette[i % len(palette)]  # one colour per run in both panels
        acc = accuracy_series(evals)
        s = once_per_step(steps)
        if align == "samples" and samples.height:
            acc = acc.join(samples, on="step", how="left").with_columns(pl.col("samples").alias("x"))
            if s.height:
                s = s.join(samples, on="step", how="left").with_columns(pl.col("samples").alias("x"))
        else:
            acc = acc.with_columns(pl.col("step").alias("x"))
            if s.height:
                s = s.with_columns(pl.col("step").alias("x"))
        if acc.height:
            x, y = _xy(acc, "value", "x")
            fig.add_trace(go.Scatter(x=x, y=y, name=f"{name}", mode=_mode(x),
                                     legendgroup=name, line={"color": color}), row=1, col=1)
        if _has(s, "reward_mean"):
            x, y = _xy(s, "reward_mean", "x")
            fig.add_trace(go.Scatter(x=x, y=y, name=f"{name} reward", mode="lines",
                                     line={"width": 1, "color": color}, legendgroup=name, showlegend=False),
                          row=2, col=1)
    fig.update_layout(height=560, margin={"l": 60, "r": 30, "t": 50, "b": 40}, title="Compare runs")
    fig.update_yaxes(row=1, col=1, **SHARE_AXIS)
    fig.update_xaxes(title_text="training samples seen" if align == "samples" else "step", row=2, col=1)
    return fig


def signal_counts(groups: pl.DataFrame) -> dict[str, int]:
    if groups.height == 0:
        return {s: 0 for s in SIGNALS}
    c = groups.group_by("signal").len()
    got = dict(zip(c["signal"].to_numpy(), c["len"].to_numpy()))
    return {s: int(got.get(s, 0)) for s in SIGNALS}


def dead_by_visit(hist: pl.DataFrame) -> go.Figure:
    """Share of prompts dead (no learning signal) at their 1st, 2nd, ... visit, with the count of
    prompts that reached that visit: whether dead prompts stay dead is read off the bars."""
    fig = go.Figure()
    if hist.height:
        v = (hist.group_by("visit").agg(pl.col("dead").mean().alias("dead"), pl.len().alias("n")).sort("visit"))
        fig.add_bar(x=v["visit"].to_numpy(), y=v["dead"].to_numpy(), name="dead share",
                    customdata=v["n"].to_numpy(), hovertemplate="visit %{x}: %{y:.0%} of %{customdata} prompts<extra></extra>")
    fig.update_layout(title="Prompts with no learning signal, by visit", xaxis_title="visit of the prompt",
                      yaxis=dict(title="share dead", range=[0, 1], tickformat=".0%"), height=300,
                      margin=dict(l=60, r=20, t=50, b=40))
    return fig
