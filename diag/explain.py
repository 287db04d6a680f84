"""How a reward is being gamed: what the completions it pays that the task's check rejects do, that the
true ones do not (`grpo-diag explain`).

Two sets of training completions from the run store, over the window of the firing reward-truth gap or
decoupling episode (or --since): "paid-untrue" (the strict check rejects them, a reward function pays
them above its usual pay for a wrong answer: the median it paid untrue completions before the window, or
the pay of the plainest wrong answers when the window is the whole run)
and "true" (the check passes them). Without truth flags, the completions the reward paid after the
episode's onset against those it paid before it: what changed in what the reward pays.

Candidates, each a share (or a median) in both sets with an effect size and a p-value, all corrected
together (Benjamini-Hochberg; kept at q <= Q and effect >= MIN_EFFECT):
- phrases: word and character n-grams (scikit-learn's CountVectorizer), ranked by the log-odds ratio
  with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' Words");
- shape: length, truncation at the length cap, numbers stated, a stated final answer, repetition, a
  change of script, and the same prompt's true answer stated among other text.
Effects share one scale, Cohen's h: on the two shares for a present/absent feature, on the probability
that a paid-untrue completion exceeds a true one (against 0.5) for a measured one.

Pure: `explain(completions, ...)` takes frames and returns the JSON shape; `explain_run` reads a run;
`explain_firing` is what `check`, the report and a sweep show. One module on purpose: the contrast, its
tests and the lines that say them are one pipeline read top to bottom.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import polars as pl
from scipy import stats

from diag.completion_shapes import BINARY, SHAPE_WORDS, scripts as _scripts, shapes
from diag.detect.verdict import reward_truth_firing

MIN_SET = 20  # completions per set below which nothing is said (how many there were is)
Q = 0.01  # false discovery rate: a run with no exploit must almost never get a pattern
MIN_EFFECT = 0.2  # Cohen's h: a "small" difference at least (Cohen 1988)
MIN_SHARE = 0.10  # a pattern in fewer paid-untrue completions than this is no habit
TOP = 8  # patterns returned at most
MAX_SET = 4000  # completions per set judged at most (a fixed random sample beyond): shares known to +-1.6 points,
# and a 100k-completion window explained in about a second
CHAR_SET = 2000  # ... and per set for character n-grams, the costliest candidates
EXAMPLE_CHARS = 240
PRIOR = 0.1  # Fightin' Words' prior strength per feature, as a share of the mean count


def _h(p1: float, p2: float) -> float:
    c = lambda p: 2 * math.asin(math.sqrt(min(1.0, max(0.0, p))))  # noqa: E731
    return c(p1) - c(p2)


def _bh(p: np.ndarray) -> np.ndarray:
    return stats.false_discovery_control(p) if len(p) else p


def _phrases(a: list[str], b: list[str]) -> list[dict]:
    """N-grams more frequent in `a` than `b`, with Fightin' Words' z and both sets' document shares."""
    from sklearn.feature_extraction.text import CountVectorizer  # lazy: only explain needs scikit-learn

    out = []
    for analyzer, ngrams, min_df in (("word", (1, 3), 3), ("char_wb", (3, 5), 5)):
        if analyzer == "char_wb" and len(a) + len(b) > 2 * CHAR_SET:  # character n-grams cost the most: fewer
            rng = np.random.default_rng(0)
            a, b = ([x[i] for i in sorted(rng.permutation(len(x))[:CHAR_SET])] for x in (a, b))
        vec = CountVectorizer(analyzer=analyzer, ngram_range=ngrams, min_df=min_df, lowercase=True, max_features=20_000,
                              token_pattern=r"(?u)\b\w+\b|[^\w\s]" if analyzer == "word" else None)
        try:
            x = vec.fit_transform(a + b)
        except ValueError:  # nothing left after min_df
            continue
        xa, xb = x[: len(a)], x[len(a):]
        ya, yb = np.asarray(xa.sum(axis=0)).ravel().astype(float), np.asarray(xb.sum(axis=0)).ravel().astype(float)
        na, nb = ya.sum(), yb.sum()
        total = ya + yb
        alpha = PRIOR * total * (len(total) / max(total.sum(), 1.0))  # informative prior: the pooled frequencies
        a0 = alpha.sum()
        delta = (np.log((ya + alpha) / (na + a0 - ya - alpha)) - np.log((yb + alpha) / (nb + a0 - yb - alpha)))
        z = delta / np.sqrt(1 / (ya + alpha) + 1 / (yb + alpha))
        da = np.asarray((xa > 0).sum(axis=0)).ravel() / len(a)
        db = np.asarray((xb > 0).sum(axis=0)).ravel() / len(b)
        names = vec.get_feature_names_out()
        xa = xa.tocsc()
        for i in np.nonzero((z > 0) & (da >= MIN_SHARE))[0]:
            out.append({"kind": "phrase", "feature": str(names[i]).strip() if analyzer == "word" else str(names[i]),
                        "analyzer": analyzer, "share_paid_untrue": float(da[i]), "share_true": float(db[i]),
                        "effect": _h(float(da[i]), float(db[i])), "log_odds": float(delta[i]), "z": float(z[i]),
                        "p": float(stats.norm.sf(z[i])), "_docs": frozenset(xa[:, i].indices.tolist())})
    return out


SAME_HABIT = 0.8  # n-grams found in this much the same paid-untrue completions (Jaccard) are one habit


def _dedupe(found: list[dict]) -> list[dict]:
    """One pattern per habit: of the n-grams that occur in nearly the same paid-untrue completions ("trust
    me ,", ", the answer", "the answer is"), the strongest (then the longest) stands for them all. Runs after
    the multiple-testing correction: every candidate tried counts there."""
    found.sort(key=lambda r: (-r["effect"], -len(r["feature"])))
    kept: list[dict] = []
    for r in found:
        docs = r.get("_docs")
        if docs is not None and any(len(docs & k["_docs"]) >= SAME_HABIT * len(docs | k["_docs"])
                                    for k in kept if k.get("_docs") is not None):
            continue
        kept.append(r)
    return kept


def _shape_tests(fa: dict[str, np.ndarray], fb: dict[str, np.ndarray]) -> list[dict]:
    out = []
    for name, va in fa.items():
        vb = fb[name]
        if name in BINARY:
            va, vb = va.astype(float), vb.astype(float)
            va, vb = va[np.isfinite(va)] > 0, vb[np.isfinite(vb)] > 0
            if len(va) < MIN_SET or len(vb) < MIN_SET:
                continue
            sa, sb = float(va.mean()), float(vb.mean())
            if sa <= sb or sa < MIN_SHARE:
                continue
            table = [[int(va.sum()), int((~va).sum())], [int(vb.sum()), int((~vb).sum())]]
            p = float(stats.fisher_exact(table, alternative="greater")[1])
            out.append({"kind": name, "feature": SHAPE_WORDS[name], "share_paid_untrue": sa, "share_true": sb,
                        "effect": _h(sa, sb), "p": p})
            continue
        ok_a, ok_b = va[np.isfinite(va)], vb[np.isfinite(vb)]
        if len(ok_a) < MIN_SET or len(ok_b) < MIN_SET or (np.ptp(np.r_[ok_a, ok_b]) == 0):
            continue
        u = stats.mannwhitneyu(ok_a, ok_b, alternative="two-sided")
        sup = float(u.statistic) / (len(ok_a) * len(ok_b))  # P(paid-untrue > true), ties half
        ma, mb = float(np.mean(ok_a)), float(np.mean(ok_b))
        out.append({"kind": name, "feature": SHAPE_WORDS[name], "median_paid_untrue": float(np.median(ok_a)),
                    "median_true": float(np.median(ok_b)), "mean_paid_untrue": ma, "mean_true": mb,
                    "ratio": ma / mb if mb else None, "share_paid_untrue": None, "share_true": None,
                    "effect": abs(_h(sup, 0.5)), "direction": "higher" if sup > 0.5 else "lower",
                    "p": float(u.pvalue)})
    return out


def _has(pattern: dict, texts: list[str], feats: dict[str, np.ndarray]) -> np.ndarray:
    """Which completions show the pattern (a measured shape: beyond the true set's median, its way)."""
    if pattern["kind"] == "phrase":
        f = pattern["feature"].lower()
        if pattern.get("analyzer") == "word":
            rx = re.compile(r"(?<!\w)" + r"\s*".join(re.escape(t) for t in f.split()) + r"(?!\w)")
            return np.array([bool(rx.search(t.lower())) for t in texts])
        return np.array([f in " " + t.lower() + " " for t in texts])
    v = feats[pattern["kind"]]
    if pattern["kind"] in BINARY:
        return np.nan_to_num(v.astype(float)) > 0
    mid = pattern["mean_true"]
    return v > mid if pattern.get("direction") == "higher" else v < mid


def _examples(pattern, df: pl.DataFrame, has: np.ndarray, true_df: pl.DataFrame) -> list[dict]:
    """The three most frequent paid-untrue texts showing the pattern, each with a true one of its prompt."""
    rows = df.filter(pl.Series(has)).to_dicts()
    counts = Counter(r["completion"] for r in rows)
    out = []
    for text, n in counts.most_common(3):
        r = next(x for x in rows if x["completion"] == text)
        same = true_df.filter(pl.col("prompt") == r["prompt"])["completion"]
        out.append({"step": r["step"], "prompt": _cut(r["prompt"]), "completion": _cut(text), "times": n,
                    "true_completion": _cut(same[0]) if same.len() else None})
    return out


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " ..."


def _trend(df_all: pl.DataFrame, pattern: dict, feats: dict[str, np.ndarray], bins: int = 10) -> list[list[float]]:
    """The pattern's share among paid-untrue completions across the run, in `bins` spans of steps (`feats`:
    their shape features, computed once for every pattern)."""
    if not df_all.height:
        return []
    has = _has(pattern, df_all["completion"].to_list(), feats).astype(float)
    if pattern["kind"] in BINARY:  # shares among the completions the feature can be judged on
        has[~np.isfinite(feats[pattern["kind"]].astype(float))] = np.nan
    steps = df_all["step"].to_numpy()
    edges = np.linspace(steps.min(), steps.max() + 1, bins + 1)
    out = []
    for lo, hi in zip(edges, edges[1:]):
        m = (steps >= lo) & (steps < hi) & np.isfinite(has)
        if m.sum() >= 3:
            out.append([int(steps[m].max()), float(has[m].mean())])
    return out


def _features(df: pl.DataFrame, cap: int | None, answers: dict | None = None,
              script: str | None = None) -> dict[str, np.ndarray]:
    texts = df["completion"].to_list()
    lengths = df["length"].cast(pl.Float64).to_numpy() if "length" in df.columns else np.full(df.height, np.nan)
    words = np.array([len(t.split()) or len(t) for t in texts], dtype=float)
    lengths = np.where(np.isfinite(lengths), lengths, words)
    ans = [None if answers is None else answers.get(p) for p in df["prompt"].to_list()]
    return shapes(texts, lengths, ans, cap, script)


def _true_answers(true_df: pl.DataFrame) -> dict[str, str]:
    """Each prompt's shortest true completion (when short: an answer, not a worked solution)."""
    out: dict[str, str] = {}
    for p, t in true_df.select("prompt", "completion").iter_rows():
        t = (t or "").strip()
        if t and len(t) <= 20 and (p not in out or len(t) < len(out[p])):
            out[p] = t
    return out


def _main_script(texts: list[str]) -> str | None:
    c = Counter(s for t in texts for s in _scripts(t))
    return c.most_common(1)[0][0] if c else None


def contrast(paid: pl.DataFrame, true: pl.DataFrame, everyone: pl.DataFrame, cap: int | None,
             answers: dict[str, str] | None = None, all_true: pl.DataFrame | None = None) -> list[dict]:
    """The patterns that set `paid` apart from `true`, ranked by effect (empty when nothing is significant).
    `answers`: each prompt's true answer where a short true completion shows it (default: from `true`)."""
    texts_a, texts_b = paid["completion"].to_list(), true["completion"].to_list()
    answers = _true_answers(true) if answers is None else answers
    script = _main_script(texts_b)
    fa, fb = _features(paid, cap, answers, script), _features(true, cap, answers, script)
    cands = _phrases(texts_a, texts_b) + _shape_tests(fa, fb)
    if not cands:
        return []
    q = _bh(np.array([c["p"] for c in cands]))
    kept = []
    for c, qv in zip(cands, q):
        if qv <= Q and c["effect"] >= MIN_EFFECT:
            kept.append({**c, "q_value": float(qv)})
    kept = [{k: v for k, v in c.items() if k != "_docs"} for c in _dedupe(kept)[:TOP]]
    every_feats = _features(everyone, cap, answers, script) if kept else {}
    for c in kept:
        has = _has(c, texts_a, fa)
        c["examples"] = _examples(c, paid, has, true if all_true is None else all_true)
        c["trend"] = _trend(everyone, c, every_feats)
    return kept


def explain(completions: pl.DataFrame, func_names: list[str], window: tuple[int, int] | None,
            reward: str | None = None, cap: int | None = None, onset: int | None = None) -> dict:
    """The JSON shape of `grpo-diag explain` from a run's completions (train mode)."""
    c = completions.filter(pl.col("mode") == "train") if completions.height else completions
    c = c.filter(pl.col("completion").is_not_null()) if c.height else c
    out = {"window": list(window) if window else None, "function": None, "mode": None, "paid_untrue": 0, "true": 0,
           "patterns": [], "note": None}
    if not c.height:
        out["note"] = ("not enough data: the run recorded no training completions; record them (DiagConfig "
                       "sample_groups > 0, or Recorder.log_batch(completions=...)) with the strict check's verdict (truth=)")
        return out
    lo, hi = window or (int(c["step"].min()), int(c["step"].max()))
    out["window"] = [lo, hi]
    inside = c.filter((pl.col("step") >= lo) & (pl.col("step") <= hi))
    f = _function(c, func_names, reward)
    out["function"] = func_names[f] if f is not None and f < len(func_names) else "reward"
    pay = (pl.col("rewards").list.get(f, null_on_oob=True) if f is not None else pl.col("reward")).alias("pay")
    c, inside = c.with_columns(pay), inside.with_columns(pay)
    if c["truth"].is_not_null().any():
        out["mode"] = "truth"
        # the usual pay for a wrong answer: its median before the window; with too few before it, the pay of
        # the plainest wrong answers (the 10th percentile: a growing exploit must not become the usual)
        untrue_before = c.filter((pl.col("truth") == False) & (pl.col("step") < lo))["pay"].drop_nulls()  # noqa: E712
        untrue = c.filter(pl.col("truth") == False)["pay"].drop_nulls()  # noqa: E712
        base = (float(untrue_before.median()) if untrue_before.len() >= MIN_SET else
                float(untrue.quantile(0.1)) if untrue.len() else 0.0)
        paid = inside.filter((pl.col("truth") == False) & (pl.col("pay") > base))  # noqa: E712
        true = inside.filter(pl.col("truth") == True)  # noqa: E712
        everyone = c.filter((pl.col("truth") == False) & (pl.col("pay") > base))  # noqa: E712
        out["usual_untrue_pay"] = base
    else:
        if onset is None:
            out["note"] = ("not enough data: the completions carry no truth flags and no decoupling episode gives an "
                           "onset to compare before and after; record the strict check's verdict (truth=)")
            return out
        out["mode"] = "before_after"
        plain = float(c["pay"].drop_nulls().quantile(0.1) or 0.0)  # what the plainest completions get
        paid_at_all = pl.col("pay") > plain
        paid, true = inside.filter(paid_at_all & (pl.col("step") >= onset)), c.filter(paid_at_all & (pl.col("step") < onset))
        everyone = c.filter(paid_at_all)
        out["note"] = ("no truth flags: the completions the reward paid after the onset against those it paid before "
                       "it (what changed in what the reward pays)")
    out["paid_untrue"], out["true"] = paid.height, true.height
    if paid.height < MIN_SET or true.height < MIN_SET:
        out["note"] = (f"not enough data: {paid.height} paid-untrue and {true.height} true completions in steps {lo}-{hi}; "
                       f"at least {MIN_SET} of each are needed to name a pattern")
        return out
    all_true = c.filter(pl.col("truth") == True) if out["mode"] == "truth" else true  # noqa: E712
    if max(paid.height, true.height, everyone.height) > MAX_SET:  # a long window: a fixed random sample of each
        out["sampled"] = {"each_set_at_most": MAX_SET, "trend_at_most": 2 * MAX_SET}
        paid, true = _sample(paid, MAX_SET), _sample(true, MAX_SET)
        everyone = _sample(everyone, 2 * MAX_SET)
    out["patterns"] = contrast(paid, true, everyone, cap, _true_answers(all_true), all_true)
    return out


def _sample(df: pl.DataFrame, n: int) -> pl.DataFrame:
    return df if df.height <= n else df.sample(n, seed=0).sort("step")


def _function(c: pl.DataFrame, names: list[str], reward: str | None) -> int | None:
    """The reward function judged: the one named, else the one paying the most untrue completions above what
    it pays the plainest of them (None: the total reward)."""
    if reward is not None:
        if reward not in names:
            raise ValueError(f"--reward {reward!r} is not one of the run's reward functions {names}")
        return names.index(reward)
    if len(names) <= 1 or "rewards" not in c.columns:
        return 0 if names else None
    if not c["truth"].is_not_null().any():
        return None
    untrue = c.filter(pl.col("truth") == False)  # noqa: E712
    best, gain = None, -math.inf
    for i in range(len(names)):
        v = untrue.select(pl.col("rewards").list.get(i, null_on_oob=True))[:, 0].drop_nulls().to_numpy()
        if len(v):
            g = float(np.mean(v > np.quantile(v, 0.1)))  # paid above a plain wrong answer: the lenient payer pays some
            if g > gain:
                best, gain = i, g
    return best


def explain_run(run, since: int | None = None, reward: str | None = None, findings=None) -> dict:
    """explain() on a run: the window of its firing reward-truth gap or decoupling episode (the earliest
    onset), or `since` to the end."""
    last = int(run.steps["step"].max()) if run.steps.height else 0
    episode = _episode(run, findings)
    onset = episode.onset if episode is not None else None
    lo = since if since is not None else (onset if onset is not None else None)
    window = (lo, last) if lo is not None else None
    cap = run.meta.get("max_completion_length")
    out = explain(run.completions, list(run.meta.get("reward_funcs", [])), window, reward,
                  int(cap) if isinstance(cap, (int, float)) else None, onset=onset if onset is not None else since)
    out = {"run": run.name, "episode": None if episode is None else {"kind": episode.kind, "onset": episode.onset,
                                                                       "severity": episode.severity}, **out}
    if episode is None and since is None:
        out["note"] = (out["note"] + "; " if out["note"] else "") + "no firing reward-truth gap or decoupling: the whole run"
    return out


def _episode(run, findings):
    """The episode explained: the firing truth gap (the per-step evidence), else the firing decoupling, the
    earliest onset first. `findings`: Finding objects, or their dicts (a dashboard's kept findings)."""
    if findings is None:
        from diag.detect import detect_all  # lazy: explain reads findings only when not given them

        findings = detect_all(run)
    if findings and isinstance(findings[0], dict):
        from diag.detect.base import Finding  # lazy: dicts only come from the dashboard

        keep = Finding.__dataclass_fields__
        findings = [Finding(**{k: v for k, v in f.items() if k in keep}) for f in findings]
    firing = [f for f in findings if f.firing and f.kind in ("truth_gap", "decoupling") and f.onset is not None]
    order = {"truth_gap": 0, "decoupling": 1}
    return min(firing, key=lambda f: (order[f.kind], f.onset)) if firing else None


def headline(result: dict) -> str | None:
    """One line for check, the report and notifications: the top pattern with its numbers."""
    if not result.get("patterns"):
        return None
    p = result["patterns"][0]
    who = "paid-untrue completions" if result.get("mode") == "truth" else "completions paid after the onset"
    other = "true ones" if result.get("mode") == "truth" else "those paid before it"
    if p["kind"] == "phrase":
        text = (f"{who}: {100 * p['share_paid_untrue']:.0f}% contain '{p['feature']}' vs "
                f"{100 * p['share_true']:.0f}% of {other}")
    elif p.get("share_paid_untrue") is not None:
        text = (f"{who}: {100 * p['share_paid_untrue']:.0f}% {p['feature']} vs "
                f"{100 * p['share_true']:.0f}% of {other}")
    else:
        ratio = f" ({p['ratio']:.2g}x)" if p.get("ratio") else ""
        text = (f"{who}: mean {p['feature']} {p['mean_paid_untrue']:.3g} vs "
                f"{p['mean_true']:.3g} for {other}{ratio}")
    more = [q for q in result["patterns"][1:3]]
    if more:
        text += "; also " + ", ".join(q["kind"] if q["kind"] != "phrase" else repr(q["feature"]) for q in more)
    return text


def explain_firing(run, findings) -> dict | None:
    """explain_run with its headline where a reward-truth gap or decoupling fires at the end (findings as
    detect_all gives them), else None: what `check` and the report show under such a finding."""
    if not reward_truth_firing(findings):
        return None
    out = explain_run(run, findings=findings)
    return {**out, "headline": headline(out)}


def pattern_line(p: dict) -> str:
    """One pattern in one line, for the report and the run page: "[kind] feature: 17% vs 0% (Cohen's h, q)"."""
    if p.get("share_paid_untrue") is not None:
        nums = f"{100 * p['share_paid_untrue']:.0f}% vs {100 * p['share_true']:.0f}%"
    else:
        nums = f"mean {p['mean_paid_untrue']:.3g} vs {p['mean_true']:.3g}"
    return f"[{p['kind']}] {p['feature']}: {nums} (Cohen's h {p['effect']:.2f}, q {p['q_value']:.2g})"


def render_text(result: dict) -> str:
    """explain's console answer: the window, the two sets, each pattern with its numbers and examples."""
    ep = result.get("episode")
    lines = [f"{result['run']}: " + (f"{ep['severity']} {ep['kind']} from step {ep['onset']}" if ep else "no firing episode")
             + (f"; steps {result['window'][0]}-{result['window'][1]}" if result.get("window") else "")]
    if result.get("mode"):
        lines.append(f"  '{result['function']}': {result['paid_untrue']} "
                     + ("paid-untrue" if result["mode"] == "truth" else "paid after the onset")
                     + f" vs {result['true']} " + ("true" if result["mode"] == "truth" else "paid before it")
                     + " completions")
    if result.get("note"):
        lines.append(f"  note: {result['note']}")
    if result.get("mode") and not result["patterns"] and result["paid_untrue"] >= MIN_SET:
        lines.append(f"  no pattern sets them apart (q <= {Q}, Cohen's h >= {MIN_EFFECT})")
    for i, p in enumerate(result["patterns"], 1):
        if p.get("share_paid_untrue") is not None:
            what = (f"contain '{p['feature']}'" if p["kind"] == "phrase" else p["feature"])
            nums = f"{100 * p['share_paid_untrue']:.0f}% {what} vs {100 * p['share_true']:.0f}%"
        else:
            nums = f"mean {p['feature']} {p['mean_paid_untrue']:.3g} vs {p['mean_true']:.3g}"
        lines.append(f"  {i}. [{p['kind']}] {nums} (Cohen's h {p['effect']:.2f}, q {p['q_value']:.2g})")
        if p.get("trend"):
            lines.append("     share over the run: " + ", ".join(f"{s}: {100 * v:.0f}%" for s, v in p["trend"]))
        for ex in p.get("examples", []):
            true = f"   | true: {ex['true_completion']!r}" if ex.get("true_completion") else ""
            lines.append(f"     e.g. step {ex['step']} ({ex['times']}x) {ex['prompt']!r} -> {ex['completion']!r}{true}")
    return "\n".join(lines)
