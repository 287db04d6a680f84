"""Correlation reports: reward versus held-out accuracy, with statistics, as HTML, Markdown or JSON.

`build(run)` is pure: numbers from a run's frames, each with the steps and eval set it used, and
"not available" (None) where the run lacks the data. Renderers only format it. The HTML is one
self-contained file: plotly.js is inlined, so it renders offline.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone

import numpy as np
import polars as pl

from diag import figures as figs
from diag import marks, missing, phases, stats
from diag.detect import align, detect_all
from diag.explain import explain_firing, pattern_line
from diag.summary import best_checkpoints, once_per_step, summarize

NA = "not available"
WINDOW_EVALS = 8  # evaluations per sliding correlation window


def _f(x):
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _corr(x, y, steps, eval_set: str) -> dict:
    out = {"eval_set": eval_set, "steps": [int(s) for s in steps], "n": int(np.isfinite(np.asarray(x, float)).sum())}
    for method in ("spearman", "kendall"):
        c = stats.rank_correlation(x, y, method=method, n_boot=1000)
        out[method] = {"r": _f(c.r), "p": _f(c.p), "ci95": [_f(c.lo), _f(c.hi)], "n": c.n}
    return out


def _trend(steps, y, what: str) -> dict:
    t = stats.theil_sen(steps, y)
    mk = stats.mann_kendall(y)
    return {"series": what, "theil_sen_slope_per_step": _f(t.slope), "slope_ci95": [_f(t.lo), _f(t.hi)],
            "mann_kendall_tau": _f(mk.tau), "mann_kendall_p": _f(mk.p), "n": mk.n,
            "steps": [int(steps[0]), int(steps[-1])] if len(steps) else None}


def _state(f: dict) -> str:
    """' (firing)' or ' (resolved at step N)' for alerts; nothing for information."""
    if f["severity"] == "info":
        return ""
    return f" (resolved at step {f['resolved_step']})" if f["state"] == "resolved" else " (firing)"


def build(run) -> dict:
    """Every statistic of the report for one run, JSON-ready."""
    s = summarize(run)
    steps = once_per_step(run.steps)
    a = align(steps, run.evals, run.eval_items, run.reward_funcs)
    rep: dict = {"run": run.name, "summary": s, "meta": {k: run.meta.get(k) for k in (
        "framework", "model", "task", "group_size", "reward_funcs", "scale_rewards", "format", "imported_from",
        "accuracy_key", "import_notes", "column_sources")}}
    ok = np.isfinite(a.acc) & np.isfinite(a.reward) if len(a) else np.zeros(0, bool)
    rep["pairs"] = [{"step": int(st), "reward": _f(r), "accuracy": _f(acc), "n": _f(n)}
                    for st, r, acc, n in zip(a.steps, a.reward, a.acc, a.n)] if len(a) else NA
    rep["pairing"] = ("training reward averaged over the steps within half an evaluation interval of each "
                      "evaluation step" if len(a) else NA)
    if ok.sum() >= 3:
        rep["correlation"] = _corr(a.reward[ok], a.acc[ok], a.steps[ok], a.eval_set)
        windows = []
        idx = np.flatnonzero(ok)
        for start in range(0, max(0, len(idx) - WINDOW_EVALS) + 1, max(1, WINDOW_EVALS // 2)):
            w = idx[start:start + WINDOW_EVALS]
            if len(w) >= 4:
                c = stats.rank_correlation(a.reward[w], a.acc[w], "spearman", n_boot=300)
                windows.append({"steps": [int(a.steps[w[0]]), int(a.steps[w[-1]])], "spearman": _f(c.r),
                                "p": _f(c.p), "n": len(w)})
        rep["sliding_correlation"] = windows or NA
        comps = {}
        for j, name in enumerate(a.func_names):
            if a.funcs.ndim == 2 and j < a.funcs.shape[1]:
                fx = a.funcs[:, j]
                m = ok & np.isfinite(fx)
                if m.sum() >= 3:
                    comps[name] = _corr(fx[m], a.acc[m], a.steps[m], a.eval_set)
        rep["component_correlation"] = comps or NA
        rep["trends"] = [_trend(a.steps[ok], a.acc[ok], f"held-out accuracy ({a.eval_set})")]
    else:
        rep["correlation"] = rep["sliding_correlation"] = rep["component_correlation"] = NA
        rep["trends"] = []
    if steps.height and "reward_mean" in steps.columns and steps["reward_mean"].drop_nulls().len() >= 3:
        st_ = steps.drop_nulls("reward_mean")
        rep["trends"].append(_trend(st_["step"].to_numpy(), st_["reward_mean"].to_numpy(), "training reward"))
    findings = detect_all(run)
    rep["findings"] = [f.to_dict() for f in findings]
    # a decoupling episode withdrawn at the end (information, diag.detect.hindsight) is none
    dec = [f for f in findings if f.kind == "reward_stall" or (f.kind == "decoupling" and f.severity != "info")]
    # the latest episode: what holds at the end of the run (an earlier one that resolved is in findings)
    rep["decoupling_onset"] = ({"step": dec[-1].onset, "kind": dec[-1].kind, "detected_at": dec[-1].step,
                                "severity": dec[-1].severity, "state": dec[-1].state,
                                "resolved_at": dec[-1].resolved_step}
                               if dec else (NA if not len(a) else None))
    rep["signal"] = _signal(run)
    rep["gamed"] = explain_firing(run, findings)
    best = next((f for f in findings if f.kind == "best_checkpoint"), None)
    b = best_checkpoints(a)
    rep["best_checkpoint"] = NA if b is None else {**b, "differ": best is not None}
    return rep




def _gamed_lines(g: dict) -> list[str]:
    """The section's sentences, plain text (each format escapes them)."""
    lines = [g["headline"] or g["note"] or "no pattern sets the paid-untrue completions apart"]
    for p in g["patterns"][:5]:
        ex = p["examples"][0] if p.get("examples") else None
        lines.append(pattern_line(p)
                     + (f"; e.g. {ex['prompt']!r} -> {ex['completion']!r}" if ex else ""))
    return lines


def _signal(run) -> dict | str:
    steps = once_per_step(run.steps)
    if steps.height == 0:
        return NA
    out = {"steps": [int(steps["step"].min()), int(steps["step"].max())]}
    have = False
    for col in ("frac_all_fail", "frac_all_pass", "frac_tied", "frac_zero_signal", "effective_batch"):
        if col in steps.columns and steps[col].null_count() < steps.height:
            v = steps[col].cast(pl.Float64)
            out[col] = {"mean": _f(v.mean()), "first_quarter": _f(v.head(max(1, len(v) // 4)).mean()),
                        "last_quarter": _f(v.tail(max(1, len(v) // 4)).mean())}
            have = True
        else:
            out[col] = NA
    if run.meta.get("column_sources", {}).get("frac_zero_signal") == "frac_reward_zero_std":
        out["caveat"] = ("frac_zero_signal comes from TRL's frac_reward_zero_std, computed from the std used to "
                         "scale rewards: it reads ~0 under scale_rewards='batch' even when groups are dead")
    return out if have else NA


# --------------------------------------------------------------------------------------- render


def figures(run, findings: list[dict]) -> list:
    """The dashboard's own figures of one run (diag.figures): reward above held-out accuracy (a curve per
    held-out set), and the signal classes, with the findings and phases marked."""
    ph = phases.of(run.meta)  # a run in phases (the SFT fallback) shows where each begins, as on the dashboard
    notes = missing.notes(run.steps, run.groups, run.evals, run.meta)  # what the log lacks, said, not drawn empty
    return [marks.explain(figs.reward_vs_accuracy(run.steps, run.evals, run.reward_funcs, findings, ph),
                         *missing.for_chart(notes, "reward_acc")),
            marks.explain(figs.signal_area(run.steps, findings, ph), *missing.for_chart(notes, "signal"))]


def _num(x, nd=3) -> str:
    if x is None:
        return NA
    if isinstance(x, float):
        return f"{x:.{nd}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{nd}f}"
    return str(x)


def _rows(rep: dict) -> list[tuple[str, str]]:
    """The headline lines shared by the Markdown and HTML renderers."""
    s = rep["summary"]
    corr = rep["correlation"]
    lines = [
        ("status", s["status"]), ("model", str(s.get("model"))), ("task", str(s.get("task"))),
        ("steps", str(s["steps"])), ("reward start / peak / end",
                                     f"{_num(s['reward_start'])} / {_num(s['reward_peak'])} / {_num(s['reward_end'])}"),
        ("held-out accuracy start / peak / end",
         f"{_num(s['accuracy_start'])} / {_num(s['accuracy_peak'])} (step {s['accuracy_peak_step']}) / {_num(s['accuracy_end'])}"
         if s["accuracy_start"] is not None else NA),
    ]
    if isinstance(corr, dict):
        sp, kd = corr["spearman"], corr["kendall"]
        lines.append(("Spearman reward vs accuracy",
                      f"{_num(sp['r'])} (p={_num(sp['p'])}, 95% CI {_num(sp['ci95'][0])}..{_num(sp['ci95'][1])}, "
                      f"n={sp['n']} evaluations of {corr['eval_set']}, steps {corr['steps'][0]}-{corr['steps'][-1]})"))
        lines.append(("Kendall reward vs accuracy",
                      f"{_num(kd['r'])} (p={_num(kd['p'])}, 95% CI {_num(kd['ci95'][0])}..{_num(kd['ci95'][1])})"))
    else:
        lines.append(("reward vs accuracy correlation", NA))
    onset = rep["decoupling_onset"]
    lines.append(("decoupling onset", NA if onset == NA else ("none detected" if onset is None else
                  f"step {onset['step']} ({onset['severity']} {onset['kind']}, detected at step {onset['detected_at']}; "
                  + (f"resolved at step {onset['resolved_at']})" if onset["state"] == "resolved" else "firing)"))))
    sig = rep["signal"]
    if isinstance(sig, dict):
        for col in ("frac_all_fail", "frac_all_pass", "frac_zero_signal", "effective_batch"):
            v = sig.get(col)
            lines.append((f"{col} mean (first / last quarter)", NA if not isinstance(v, dict) else
                          f"{_num(v['mean'])} ({_num(v['first_quarter'])} / {_num(v['last_quarter'])}), "
                          f"steps {sig['steps'][0]}-{sig['steps'][1]}"))
        if "caveat" in sig:
            lines.append(("caveat", sig["caveat"]))
    else:
        lines.append(("signal-gap statistics", NA))
    b = rep["best_checkpoint"]
    if isinstance(b, dict):
        br = b["by_reward"]
        lines.append(("best checkpoint by held-out accuracy", f"step {b['by_accuracy']['step']} ({_num(b['by_accuracy']['accuracy'])})"))
        lines.append(("best checkpoint by reward", NA if br is None else
                      f"step {br['step']} (reward {_num(br['reward'])}, held-out {_num(br['accuracy'])})"))
    else:
        lines.append(("best checkpoint", NA))
    return lines


def to_markdown(reps: list[dict]) -> str:
    out = [f"# grpo-diag report: {', '.join(r['run'] for r in reps)}", "",
           f"_generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}_", ""]
    if len(reps) > 1:
        out += _comparison_md(reps)
    for r in reps:
        out += [f"## {_md_escape(r['run'])}", "", "| | |", "|---|---|"]
        out += [f"| {k} | {_md_escape(v)} |" for k, v in _rows(r)]
        out += ["", "### Findings", ""]
        out += [f"- **{f['severity']}** {f['kind']} at step {f['step']}{_state(f)}: {_md_escape(f['message'])}"
                for f in r["findings"]] or ["- none"]
        if r.get("gamed"):
            out += ["", "### How the reward is being gamed", ""] + [f"- {_md_escape(t)}" for t in _gamed_lines(r["gamed"])]
        if isinstance(r["pairs"], list):
            out += ["", "### Reward / held-out accuracy at each evaluation", "", "| step | reward | accuracy |", "|---|---|---|"]
            out += [f"| {p['step']} | {_num(p['reward'])} | {_num(p['accuracy'])} |" for p in r["pairs"]]
        if isinstance(r["sliding_correlation"], list):
            out += ["", f"### Sliding Spearman correlation ({WINDOW_EVALS} evaluations per window)", "",
                    "| steps | rho | p |", "|---|---|---|"]
            out += [f"| {w['steps'][0]}-{w['steps'][1]} | {_num(w['spearman'])} | {_num(w['p'])} |" for w in r["sliding_correlation"]]
        if isinstance(r["component_correlation"], dict):
            out += ["", "### Per reward component (Spearman with held-out accuracy)", "", "| component | rho | p |", "|---|---|---|"]
            out += [f"| {_md_escape(k)} | {_num(v['spearman']['r'])} | {_num(v['spearman']['p'])} |"
                    for k, v in r["component_correlation"].items()]
        if r["trends"]:
            out += ["", "### Trend tests", "", "| series | Theil-Sen slope / step (95% CI) | Mann-Kendall tau (p) | steps |",
                    "|---|---|---|---|"]
            out += [f"| {t['series']} | {_num(t['theil_sen_slope_per_step'])} ({_num(t['slope_ci95'][0])}..{_num(t['slope_ci95'][1])}) | "
                    f"{_num(t['mann_kendall_tau'])} ({_num(t['mann_kendall_p'])}) | {t['steps'][0]}-{t['steps'][1]} |" for t in r["trends"]]
        out.append("")
    return "\n".join(out)


def _comparison_md(reps: list[dict]) -> list[str]:
    head = "| | " + " | ".join(_md_escape(r["run"]) for r in reps) + " |"
    out = ["## Comparison", "", head, "|---|" + "---|" * len(reps)]
    keys = [k for k, _ in _rows(reps[0])]
    table = [dict(_rows(r)) for r in reps]
    for k in keys:
        out.append(f"| {k} | " + " | ".join(_md_escape(t.get(k, NA)) for t in table) + " |")
    return out + [""]


def _md_escape(s) -> str:
    s = str(s)
    return html.escape(s).replace("|", "\\|").replace("\n", " ")


def to_html(reps: list[dict], runs: list) -> str:
    from plotly.offline import get_plotlyjs

    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>grpo-diag report</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             ".critical{color:#b00020}.warning{color:#b26a00}.info{color:#555}</style>",
             f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>grpo-diag report: {e(', '.join(r['run'] for r in reps))}</h1>",
             f"<p><em>generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}</em></p>"]
    if len(reps) > 1:
        table = [dict(_rows(r)) for r in reps]
        parts.append("<h2>Comparison</h2><table><tr><th></th>" + "".join(f"<th>{e(r['run'])}</th>" for r in reps) + "</tr>")
        for k, _ in _rows(reps[0]):
            parts.append(f"<tr><td>{e(k)}</td>" + "".join(f"<td>{e(str(t.get(k, NA)))}</td>" for t in table) + "</tr>")
        parts.append("</table>")
    for rep, run in zip(reps, runs):
        parts.append(f"<h2>{e(rep['run'])}</h2><table>")
        parts += [f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in _rows(rep)]
        parts.append("</table><h3>Findings</h3><ul>")
        number = {id(f): n for n, f in marks.numbered(rep["findings"])}  # the number of its marker on the charts
        parts += [f"<li class='{e(f['severity'])}'>{'#%d ' % number[id(f)] if id(f) in number else ''}"
                  f"<b>{e(f['severity'])}</b> {e(f['kind'])} at step {f['step']}"
                  f"{e(_state(f))}: {e(f['message'])}</li>" for f in rep["findings"]] or ["<li>none</li>"]
        parts.append("</ul>")
        if rep.get("gamed"):
            parts.append("<h3>How the reward is being gamed</h3><ul>" + "".join(
                f"<li>{e(t)}</li>" for t in _gamed_lines(rep["gamed"])) + "</ul>")
        for fig in figures(run, rep["findings"]):
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
        if isinstance(rep["pairs"], list):
            parts.append("<h3>Reward / held-out accuracy at each evaluation</h3><table><tr><th>step</th><th>reward</th>"
                         "<th>accuracy</th></tr>")
            parts += [f"<tr><td>{p['step']}</td><td>{_num(p['reward'])}</td><td>{_num(p['accuracy'])}</td></tr>"
                      for p in rep["pairs"]]
            parts.append("</table>")
        parts.append(f"<details><summary>all statistics (JSON)</summary><pre>{e(to_json([rep]))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_json(reps: list[dict]) -> str:
    return json.dumps(reps if len(reps) > 1 else reps[0], indent=2, default=str)


def render(runs: list, fmt: str) -> str:
    reps = [build(r) for r in runs]
    if fmt == "json":
        return to_json(reps)
    if fmt == "md":
        return to_markdown(reps)
    if fmt == "html":
        return to_html(reps, runs)
    raise ValueError(f"unknown report format {fmt!r}; choose html, md or json")
