"""The SFT fallback as a user starts it (training/configs/remedies/sft-fallback.toml): GRPO from the weak
base until the monitor confirms a signal gap, an SFT warm-start, the probe again, GRPO resumed. Every figure
read back from the run (its phases, its probe before and after, the gap alert and its resolution, held-out
accuracy in each phase) and kept with `--record` (entry `fallback`) for docs/remedies.md.

    python benchmarks/fallback.py [--out runs/remedies-fallback] [--record]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import recorded_wall, report  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

CONFIG = ROOT / "training" / "configs" / "remedies" / "sft-fallback.toml"


def figures(path: Path) -> dict:
    """The fallback's story, from its run."""
    import polars as pl

    import diag
    from diag import phases
    from diag.detect import detect_all

    run = diag.open_run(path)
    ph = phases.of(run.meta)
    grpo = [p for p in ph if p["phase"] == "grpo"]
    sft = next(p for p in ph if p["phase"] == "sft")
    acc = run.evals.filter((pl.col("bucket") == "all") & (pl.col("metric") == "accuracy")
                           & (pl.col("eval_set") == "heldout")).sort("step")
    at = dict(zip(acc["step"].to_list(), acc["value"].to_list()))
    last = acc.filter(pl.col("step") >= grpo[-1]["start"])["value"]
    gaps = [f for f in detect_all(run) if f.kind == "signal_gap" and f.is_alert]
    gap = gaps[0] if gaps else None
    G = str(run.meta.get("group_size"))
    return {
        "stop_step": grpo[0]["end"], "sft_steps": sft["end"] - sft["start"] + 1, "resume_step": grpo[-1]["start"],
        "all_fail_at_alert": gap.evidence.get("share_all_fail") if gap else None,
        "all_fail_peak": gap.evidence.get("peak_share") if gap else None,
        "probe_before": (run.meta.get("probe") or {}).get("all_fail_share", {}).get(G),
        "probe_after": (sft.get("probe_after") or {}).get("all_fail_share", {}).get(G), "group_size": int(G),
        "gap_severity": gap.severity if gap else "none", "gap_resolved_step": gap.resolved_step if gap else None,
        "acc_at_stop": at.get(grpo[0]["end"]), "acc_after_sft": at.get(sft["end"]),
        "acc_last_phase_min": float(last.min()) if len(last) else None,
        "acc_last_phase_max": float(last.max()) if len(last) else None,
        "all_fail_by_phase": phases.all_fail_by_phase(run.steps, ph),
        "wall_s": recorded_wall(run),  # every phase, as the store timed it
    }


def main(argv: list[str] | None = None) -> dict:
    from training.cli import quiet_libraries
    from training.config import load
    from training.launch import launch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/remedies-fallback")
    p.add_argument("--record", action="store_true", help="keep the figures in benchmarks/results.json")
    a = p.parse_args(argv)
    quiet_libraries()
    path = launch(load(CONFIG), a.out, overwrite=True)
    return report(figures(Path(path)), record_as="fallback" if a.record else None)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
