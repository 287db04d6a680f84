"""Are the verdicts right? grpo-diag and rldoctor 0.2.0 on pre-registered real runs and generated ones.

Real runs: the public logs in ../shared/real_logs (or $GRPO_DIAG_REAL_LOGS), labelled in
benchmarks/real_runs/labels.toml from their series BEFORE any detector ran on them. Each run is
imported with the label file's options, judged by `check_run` (the verdict `grpo-diag check` gives),
and compared with what its label expects; disagreements are printed as misses, and the labels are never
changed to fit. The peer (benchmarks/peer.py) is fed the same imported series.
Generated: benchmarks/detection.py's tiny-model-like runs and benchmarks/shapes.py's real-run shapes,
with known onsets (seeds disjoint from benchmarks/sweep.py's, which chose the thresholds).

    python benchmarks/validity.py [--runs 200] [--no-peer]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LABELS = HERE / "real_runs" / "labels.toml"
ALLOWED = {"decoupled": "decoupling", "transient": "decoupling", "dead": "signal_gap"}
LABEL_ORDER = ("healthy", "plateau", "collapse", "saturated", "dead", "decoupled", "transient")


def real_logs_dir() -> Path:
    return Path(os.environ.get("GRPO_DIAG_REAL_LOGS") or HERE.parent.parent / "shared" / "real_logs")


def expectation_met(expect: str, findings) -> bool:
    alerts = [f for f in findings if f.is_alert]
    if expect == "no_critical":
        return not any(f.severity == "critical" for f in alerts)
    if expect == "no_signal_gap":
        return not any(f.kind == "signal_gap" for f in alerts)
    if expect == "signal_gap":
        return any(f.kind == "signal_gap" for f in alerts)
    if expect == "no_decoupling_critical":
        return not any(f.kind == "decoupling" and f.severity == "critical" for f in alerts)
    if expect == "decoupling":
        return any(f.kind in ("decoupling", "reward_stall") for f in alerts)
    if expect == "decoupling_firing":
        return any(f.kind in ("decoupling", "reward_stall") and f.firing for f in alerts)
    if expect == "decoupling_resolved":
        return any(f.kind == "decoupling" and f.state == "resolved" for f in alerts)
    if expect == "no_truth_gap":
        return not any(f.kind == "truth_gap" for f in alerts)
    if expect == "no_warning_at_end":
        return not any(f.firing for f in alerts)
    if expect == "no_critical_at_end":
        return not any(f.firing and f.severity == "critical" for f in alerts)
    raise KeyError(f"{LABELS}: unknown expectation {expect!r}")


def judge_real(root: Path, logs: Path, with_peer: bool) -> list[dict]:
    import diag
    import peer
    from diag.detect import check_run
    from diag.importers import import_log

    labels = tomllib.loads(LABELS.read_text())["run"]
    rows = []
    for entry in labels:
        src = logs / entry["path"]
        path, _ = import_log(src, fmt=entry.get("format", "auto"), name=entry["name"], root=str(root),
                             profile=entry.get("profile"), eval_size=entry.get("eval_size"), overwrite=True)
        run = diag.open_run(path)
        findings, verdict = check_run(run)
        alerts = [f for f in findings if f.is_alert]
        expect = entry.get("expect", [])
        row = {"name": entry["name"], "label": entry["label"],
               "missed": [e for e in expect if not expectation_met(e, findings)],
               "alerts": [f"{f.severity} {f.kind} ({f.state}, onset {f.onset})" for f in alerts],
               "ends": verdict["ends"], "flagged": bool(alerts),
               "warning_at_end": any(f.firing for f in alerts),
               # a critical alert the label does not call for (decoupled: decoupling; dead: signal gap)
               "false_critical": any(f.severity == "critical" and f.kind != ALLOWED.get(entry["label"]) for f in alerts),
               "findings": findings_by_kind(findings)}
        if with_peer:
            v = peer.diagnose(run)
            row["peer"] = {"worst": v["worst"], "missed": [e for e in expect if not peer.expectation_met(e, v)],
                           "flagged": peer.flagged(v),
                           "false_critical": v["worst"] == "CRITICAL" and entry["label"] not in ALLOWED,
                           "checks": {k: s for k, s in v["checks"].items() if s in ("WARNING", "CRITICAL")}}
        rows.append(row)
    return rows


def findings_by_kind(findings) -> dict:
    """Each finding the verdict holds (not the 'not enough data' ones), by kind (the first of a kind), with its
    numbers: the guides cite a real run's drop, z and windows from here, never typed from a console."""
    out: dict = {}
    for f in findings:
        if f.kind == "no_data" or f.kind in out:
            continue
        ev = {k: v for k, v in f.evidence.items() if _scalar(v) or (isinstance(v, list) and all(map(_scalar, v)))}
        ev.update({f"other/{o['eval_set']}/{k}": o[k] for o in f.evidence.get("other_sets") or [] for k in ("drop", "z")})
        out[f.kind] = {"severity": f.severity, "state": f.state, "step": f.step, "onset": f.onset,
                       "resolved_step": f.resolved_step, **ev}
    return out


def _scalar(v) -> bool:
    return isinstance(v, (int, float, str)) and not isinstance(v, bool)


QUIET = ("healthy", "plateau", "collapse", "saturated")


def real_summary(rows: list[dict], with_peer: bool) -> dict:
    """The counts the validity guide's sentences use: runs whose label calls for no alert, and who flagged them."""
    quiet = [r for r in rows if r["label"] in QUIET]
    out = {"quiet_runs": len(quiet), "quiet_flagged": sum(r["flagged"] for r in quiet),
           "quiet_false_critical": sum(r["false_critical"] for r in quiet),
           "quiet_warning_at_end": sum(r["warning_at_end"] for r in quiet)}
    if with_peer:
        out.update(quiet_peer_flagged=sum(r["peer"]["flagged"] for r in quiet),
                   quiet_peer_critical=sum(r["peer"]["worst"] == "CRITICAL" for r in quiet))
    return out


def _header(ours: list[str], peers: list[str], with_peer: bool) -> list[str]:
    """A Markdown table's two header lines: this project's columns, then rldoctor's when it ran."""
    cols = ours + (peers if with_peer else [])
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def real_table(rows: list[dict], with_peer: bool) -> str:
    lines = _header(["label", "runs", "grpo-diag flagged", "grpo-diag right", "grpo-diag false critical",
                     "grpo-diag warning at end"], ["rldoctor flagged", "rldoctor right", "rldoctor false critical"],
                    with_peer)
    for label in LABEL_ORDER:
        rs = [r for r in rows if r["label"] == label]
        if not rs:
            continue
        line = (f"| {label} | {len(rs)} | {sum(r['flagged'] for r in rs)} | {sum(not r['missed'] for r in rs)}/{len(rs)} "
                f"| {sum(r['false_critical'] for r in rs)} | {sum(r['warning_at_end'] for r in rs)} |")
        if with_peer:
            line += (f" {sum(r['peer']['flagged'] for r in rs)} | {sum(not r['peer']['missed'] for r in rs)}/{len(rs)} "
                     f"| {sum(r['peer']['false_critical'] for r in rs)} |")
        lines.append(line)
    return "\n".join(lines)


def misses(rows: list[dict], with_peer: bool) -> list[str]:
    out = [f"- grpo-diag, {r['name']} ({r['label']}): expected {', '.join(r['missed'])}; got "
           f"{'; '.join(r['alerts']) or 'no alert'}" for r in rows if r["missed"]]
    if with_peer:
        out += [f"- rldoctor, {r['name']} ({r['label']}): expected {', '.join(r['peer']['missed'])}; got worst "
                f"{r['peer']['worst']} ({', '.join(f'{k} {s}' for k, s in r['peer']['checks'].items()) or 'no warning'})"
                for r in rows if r["peer"]["missed"]]
    return out


def judge_generated(n_runs: int, seed: int, with_peer: bool) -> dict:
    """Per kind: right, false alarms and median delay for grpo-diag (and rldoctor's right / false alarms)."""
    import detection
    import peer
    import shapes

    from diag.detect import align, detect_all, detect_decoupling

    kinds = [("tiny-healthy", "healthy"), ("tiny-decoupled", "decoupled"), ("tiny-weak", "weak")]
    kinds += [(s, s) for s in shapes.SHAPES]
    out = {}
    for name, kind in kinds:
        res = {"runs": 0, "right": 0, "false": 0, "delays": [], "delays_check": [], "peer_right": 0, "peer_false": 0,
               "firing": 0, "quiet": False}
        for i in range(n_runs if kind != "weak" else max(10, n_runs // 4)):
            if name.startswith("tiny-"):
                run, onset = detection.make_run(kind, seed * 1_000_003 + i + 100_000 * ("healthy", "decoupled", "weak").index(kind))
                truth = {"onset": onset, "end": None, "expect": {"healthy": "no_alert", "weak": "signal_gap_only",
                                                                 "decoupled": "decoupling_firing"}[kind]}
            else:
                run, truth = shapes.make_shape_run(kind, seed * 1_000_003 + 700_000 + i)
            findings = detect_all(run)
            a = align(run.steps, run.evals, run.eval_items, run.meta["reward_funcs"])
            v = shapes.verdict(findings, truth, live=detect_decoupling(a) if len(a) else [])
            res["runs"] += 1
            res["right"] += v["right"]
            res["false"] += v["false_alarm"]
            if v["firing_at_end"] is not None:
                res["quiet"], res["firing"] = True, res["firing"] + v["firing_at_end"]
            if v["right"] and v["delay"] is not None:
                res["delays"].append(v["delay"])
            after = shapes.verdict(findings, truth)  # the delay to check's first alert, found with the whole run
            if after["right"] and after["delay"] is not None:
                res["delays_check"].append(after["delay"])
            if with_peer:
                pv = peer.diagnose(run)
                right, false = peer.generated_verdict(pv, truth["expect"])
                res["peer_right"] += right
                res["peer_false"] += false
        n = res["runs"]
        out[name] = {"runs": n, "right": res["right"] / n, "false_alarm": res["false"] / n,
                     "firing_at_end": res["firing"] / n if res["quiet"] else None,
                     "median_delay": float(np.median(res["delays"])) if res["delays"] else None,
                     "median_delay_check": float(np.median(res["delays_check"])) if res["delays_check"] else None,
                     "peer_right": res["peer_right"] / n if with_peer else None,
                     "peer_false_alarm": res["peer_false"] / n if with_peer else None}
    return out


def generated_table(g: dict, with_peer: bool) -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    lines = _header(["generated", "runs", "what is right", "grpo-diag right", "grpo-diag false alarms",
                     "any warning firing at the end", "median delay (evals)", "clairvoyant ceiling"],
                    ["rldoctor right", "rldoctor false alarms"],
                    with_peer)
    import shapes

    what = {"tiny-healthy": "no alert", "tiny-decoupled": "decoupling firing at the end", "tiny-weak": "signal gap, no decoupling",
            **{k: v.replace("_", " ") for k, v in shapes.EXPECT.items()}}
    for name, r in g.items():
        delay = "-" if r["median_delay"] is None else f"{r['median_delay']:.1f}"
        if r.get("ceiling_delay") is not None:
            delay += f" (clairvoyant {r['ceiling_delay']:.1f})"
        line = (f"| {name} | {r['runs']} | {what[name]} | {pct(r['right'])} | {pct(r['false_alarm'])} "
                f"| {pct(r.get('firing_at_end'))} | {delay} "
                f"| {pct(r.get('ceiling'))} |")
        if with_peer:
            line += f" {pct(r['peer_right'])} | {pct(r['peer_false_alarm'])} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200, help="generated runs per kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-peer", action="store_true", help="leave rldoctor out")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    a = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import peer

    with_peer = not a.no_peer and peer.available()
    if not a.no_peer and not with_peer:
        print("rldoctor is not installed (pip install -e '.[peer]'): its columns are left out")
    logs = real_logs_dir()
    out: dict = {"peer": with_peer}
    start = time.perf_counter()
    if logs.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            rows = judge_real(Path(tmp), logs, with_peer)
        out["real"] = rows
        for r in rows:
            peer_note = f"  | rldoctor: {r['peer']['worst']}{' MISS' if r['peer']['missed'] else ''}" if with_peer else ""
            print(f"{'ok  ' if not r['missed'] else 'MISS'} {r['name']:<28} {r['label']:<10} "
                  f"{'; '.join(r['alerts']) or 'no alert'}" + (f"  [expected {', '.join(r['missed'])}]" if r["missed"] else "")
                  + peer_note)
        print("\nReal runs (labels pre-registered in benchmarks/real_runs/labels.toml):\n")
        print(real_table(rows, with_peer))
        print("\nMisses:\n" + ("\n".join(misses(rows, with_peer)) or "none"))
    else:
        print(f"real logs not found at {logs} (set GRPO_DIAG_REAL_LOGS): real-run table skipped")
    if a.runs < 1:
        return out  # --runs 0: the real-run table alone
    t0 = time.perf_counter()
    g = judge_generated(a.runs, a.seed, with_peer)
    import ceiling

    bound = ceiling.ceiling(a.runs, a.seed)
    for shape in (*ceiling.FALLS, "dip"):
        g[shape]["ceiling"] = bound[shape]
    g["healthy_noisy"]["ceiling_threshold"] = bound["threshold"]
    g["healthy_noisy"]["dip_ceiling_threshold"] = bound["dip_threshold"]
    tiny = ceiling.tiny_delays(a.runs, a.seed)
    g["tiny-decoupled"].update(ceiling=tiny["found"], ceiling_delay=tiny["median_delay"],
                               ceiling_threshold=tiny["threshold"])
    out["generated"] = g
    print(f"\nGenerated runs ({a.runs} per kind, seed {a.seed}, {time.perf_counter() - t0:.0f} s):\n")
    print(generated_table(g, with_peer))
    if a.record:
        from common import record

        real = out.get("real", [])
        record("validity", {"peer": with_peer, "real": [{k: v for k, v in r.items() if k != "findings"} for r in real],
                            "real_misses": misses(real, with_peer),
                            "real_summary": real_summary(real, with_peer),
                            "findings": {r["name"]: r["findings"] for r in real},
                            "seconds": time.perf_counter() - start,
                            **{f"generated/{k}": v for k, v in g.items()}})
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
