"""Logs of hand-written loops: JSONL, CSV or plain console text, read through a key mapping.

A mapping names, for each column grpo-diag needs, where it comes from:

    grpo-diag import metrics.jsonl --format generic --map step=iteration --map reward=mean_reward \\
        --map accuracy=eval/pass_at_1 --map eval_size=eval/n_problems \\
        --map "frac_zero_signal={groups_skipped}/{groups_total}" --save-profile my-loop

JSONL / CSV: a value is a key, or an arithmetic expression over keys written `{key}` (+ - * / and
parentheses only). Console text: a value is a regular expression with a `value` group (or `num` and
`den`, divided) and optionally a `step` group; `step` lines set the current step, `eval_marker` lines
send the next `accuracy` match to an evaluation (at the marker's `step` group when it has one), and
`count_steps = true` numbers training values 0, 1, 2, ... in order. Constants (`eval_size = 1024`)
go under [constants]. A profile is this mapping saved as TOML, reusable with --profile.
"""

from __future__ import annotations

import ast
import csv
import json
import operator
import re
import tomllib
from pathlib import Path

from diag.importers.base import ImportFailure, Parsed, finite, jsonl_lines

# target -> steps column (None: handled separately)
TARGETS = {
    "step": None, "reward": "reward_mean", "reward_std": "reward_std", "accuracy": None, "eval_size": None,
    "frac_zero_signal": "frac_zero_signal", "frac_all_fail": "frac_all_fail", "frac_all_pass": "frac_all_pass",
    "len_mean": "len_mean", "frac_clipped": "frac_clipped",
    # the share of training completions the task's strict check accepts (the reward-truth gap per step)
    "truth_rate": "truth_rate",
}
PROFILE_DIR = Path(__file__).parent / "profiles"
USER_PROFILE_DIR = Path.home() / ".config" / "grpo-diag" / "profiles"
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def parse_maps(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ImportFailure(f"--map {item!r}: expected TARGET=KEY, e.g. --map reward=mean_reward; "
                                f"targets: {', '.join(TARGETS)}")
        k, v = item.split("=", 1)
        k = k.strip()
        if k not in TARGETS and not k.startswith("func:"):
            raise ImportFailure(f"--map {item!r}: unknown target {k!r}; targets: {', '.join(TARGETS)}, func:NAME")
        out[k] = v.strip()
    return out


def load_profile(spec: str) -> dict:
    """A profile by name (shipped, or saved under ~/.config/grpo-diag/profiles) or by path."""
    cands = [Path(spec)] if spec.endswith(".toml") else [USER_PROFILE_DIR / f"{spec}.toml", PROFILE_DIR / f"{spec}.toml"]
    for c in cands:
        if c.is_file():
            try:
                return tomllib.loads(c.read_text())
            except tomllib.TOMLDecodeError as e:
                raise ImportFailure(f"{c}: invalid TOML in the import profile: {e}") from e
    shipped = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    raise ImportFailure(f"import profile {spec!r} not found (looked in {', '.join(str(c) for c in cands)}); "
                        f"shipped profiles: {', '.join(shipped)}")


def save_profile(profile: dict, spec: str) -> Path:
    path = Path(spec) if spec.endswith(".toml") else USER_PROFILE_DIR / f"{spec}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for section in ("map", "regex", "constants"):
        if profile.get(section):
            lines.append(f"[{section}]")
            for k, v in profile[section].items():
                lines.append(f"{json.dumps(k) if not k.isidentifier() else k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _expr(text: str, row: dict, where: str):
    """A key, or {key} arithmetic: evaluated on plain numbers only, never as Python."""
    if "{" not in text:
        return finite(row.get(text)) if text in row else None
    names: list[str] = []

    def sub(m):
        names.append(m.group(1))
        return f"_v{len(names) - 1}"

    src = re.sub(r"\{([^{}]+)\}", sub, text)
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as e:
        raise ImportFailure(f"{where}: expression {text!r} is not arithmetic over {{key}}s: {e.msg}") from e
    vals = [finite(row.get(n)) if n in row else None for n in names]

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            a, b = ev(node.left), ev(node.right)
            if a is None or b is None or (isinstance(node.op, ast.Div) and b == 0):
                return None
            return _OPS[type(node.op)](a, b)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id.startswith("_v"):
            return vals[int(node.id[2:])]
        raise ImportFailure(f"{where}: expression {text!r} may use {{key}}, numbers, + - * / and parentheses only")

    return ev(tree)


def _records(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        return list(csv.DictReader(path.read_text(encoding="utf-8", errors="replace").splitlines()))
    hint = "JSONL needs one object per line, or use --format generic with [regex] patterns for console text"
    return [r for _, r in jsonl_lines(path, hint) if isinstance(r, dict)]


def parse(path: Path, maps: dict[str, str] | None = None, profile: str | None = None,
          eval_size: int | None = None) -> Parsed:
    prof = load_profile(profile) if profile else {}
    m = {**prof.get("map", {}), **(maps or {})}
    rx = dict(prof.get("regex", {}))
    const = dict(prof.get("constants", {}))
    if eval_size is not None:
        const["eval_size"] = eval_size
    p = Parsed(source=str(path), format="generic")
    p.meta.update(framework="generic", import_mapping={"map": m, "regex": rx, "constants": const})
    if rx:
        _parse_text(path, rx, const, p)
    elif m:
        _parse_records(path, m, const, p)
    else:
        raise ImportFailure(f"{path}: --format generic needs a mapping: --map step=KEY --map reward=KEY "
                            "--map accuracy=KEY ..., or --profile NAME")
    if not p.steps and not p.evals:
        raise ImportFailure(f"{path}: the mapping matched nothing; check the keys / patterns "
                            f"({', '.join(f'{k}={v}' for k, v in (m or rx).items())})")
    return p


def _funcs(m: dict) -> list[str]:
    return [k.split(":", 1)[1] for k in m if k.startswith("func:")]


def _parse_records(path: Path, m: dict, const: dict, p: Parsed) -> None:
    rows = _records(path)
    if not rows:
        raise ImportFailure(f"{path}: no records (expected JSON lines or a CSV with a header)")
    if "step" not in m:
        raise ImportFailure(f"{path}: the mapping needs step=KEY (the key holding the training step)")
    funcs = _funcs(m)
    p.meta["reward_funcs"] = funcs or ["reward"]
    for i, r in enumerate(rows):
        p.fields |= set(r)
        where = f"{path} record {i + 1}"
        step = _expr(m["step"], r, where)
        if step is None:
            continue
        step = int(step)
        for k, v in r.items():
            f = finite(v)
            if f is not None and not isinstance(v, bool):
                p.scalars.append({"step": step, "mode": "train", "key": str(k)[:200], "value": f})
        reward = _expr(m["reward"], r, where) if "reward" in m else None
        if reward is not None:
            row = {"step": step, **{col: _expr(m[t], r, where) for t, col in TARGETS.items() if col and t in m}}
            row["func_mean"] = [_expr(m[f"func:{f}"], r, where) for f in funcs] if funcs else [reward]
            p.steps.append(row)
        acc = _expr(m["accuracy"], r, where) if "accuracy" in m else None
        if acc is not None:
            n = _expr(m["eval_size"], r, where) if "eval_size" in m else const.get("eval_size")
            p.evals.append({"step": step, "eval_set": "heldout", "metric": "accuracy", "bucket": "all",
                            "value": acc, "n": int(n) if n else None})


def _value(match: re.Match) -> float | None:
    g = match.groupdict()
    if g.get("num") is not None and g.get("den") is not None:
        den = finite(g["den"])
        return None if not den else (finite(g["num"]) or 0.0) / den
    return finite(g.get("value") if "value" in g else match.group(1))


def _parse_text(path: Path, rx: dict, const: dict, p: Parsed) -> None:
    try:
        pats = {k: re.compile(v) for k, v in rx.items() if isinstance(v, str)}
    except re.error as e:
        raise ImportFailure(f"{path}: a [regex] pattern of the profile does not compile: {e}") from e
    count = bool(rx.get("count_steps"))
    p.meta["reward_funcs"] = ["reward"]
    step, n_train, marker_step = 0, 0, None
    pending = False
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if "eval_marker" in pats and (mm := pats["eval_marker"].search(line)):
                pending = True
                marker_step = int(mm.group("step")) if mm.groupdict().get("step") else step
                continue
            if "step" in pats and (ms := pats["step"].search(line)):
                step = int(ms.group("step") if ms.groupdict().get("step") else ms.group(1))
            if "accuracy" in pats and (ma := pats["accuracy"].search(line)) and (pending or "eval_marker" not in pats):
                v = _value(ma)
                at = int(ma.group("step")) if ma.groupdict().get("step") else (marker_step if pending else step)
                if v is not None:
                    p.evals.append({"step": at, "eval_set": "heldout", "metric": "accuracy", "bucket": "all",
                                    "value": v, "n": const.get("eval_size")})
                pending = False
                continue
            if "reward" in pats and (mr := pats["reward"].search(line)):
                v = _value(mr)
                at = n_train if count else (int(mr.group("step")) if mr.groupdict().get("step") else step)
                n_train += 1
                if v is not None:
                    p.steps.append({"step": at, "reward_mean": v, "func_mean": [v]})
                    p.scalars.append({"step": at, "mode": "train", "key": "reward", "value": v})
    p.fields |= {"reward"} | ({"accuracy"} if p.evals else set())
