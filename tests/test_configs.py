"""Every shipped config loads and validates; bad configs get errors that name the key and the fix."""

import pytest

from training.config import ConfigError, from_dict, load, shipped


def test_there_are_shipped_configs():
    names = {p.stem for p in shipped()}
    assert {"strong-healthy", "weak-signal-gap", "deceptive-reward"} <= names


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_shipped_config_validates(path):
    cfg = load(path)
    assert cfg.name and cfg.kind in ("sft", "grpo", "sft_grpo")
    if cfg.kind != "sft":
        assert cfg.grpo.rewards


@pytest.mark.parametrize("bad, message", [
    ({}, "missing key 'name'"),
    ({"name": "x", "kind": "ppo"}, "kind = 'ppo' is unknown"),
    ({"name": "x", "grpo": {"rewards": ["nope"]}}, r"grpo.rewards has unknown function\(s\) \['nope'\]"),
    ({"name": "x", "grpo": {"lr_rate": 1}}, r"unknown key\(s\) \['lr_rate'\] in \[grpo\]"),
    ({"name": "x", "grpo": {"num_generations": 1}}, "num_generations must be >= 2"),
    ({"name": "x", "grpo": {"rewards": ["strict_correct"], "reward_weights": [1, 2]}}, "reward_weights has 2 entries"),
    ({"name": "x", "grpo": {"verifier": "lenient_correct"}}, "grpo.verifier = 'lenient_correct' must be one of"),
    ({"name": "x", "task": {"name": "calculus"}}, "task.name = 'calculus' is unknown"),
    ({"name": "../etc"}, "invalid run name"),
    ({"name": "x", "sft": {"lr": 5}}, "sft.lr = 5 is out of range"),
    ({"name": "x", "extra": 1}, r"unknown key\(s\) \['extra'\]"),
    ({"name": "x", "grpo": 3}, r"\[grpo\] must be a table"),
])
def test_bad_configs(bad, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(bad, "cfg.toml")


def test_bad_toml_names_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("name = \n")
    with pytest.raises(ConfigError, match="broken.toml: invalid TOML"):
        load(p)
    with pytest.raises(ConfigError, match="no such config file"):
        load(tmp_path / "missing.toml")


def test_library_never_imports_training_or_dashboards():
    """diag/ is the library: entry points and the dashboard depend on it, never the reverse."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "diag"
    offenders = []
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{f.name}: {n}" for n in names if n.split(".")[0] in ("training", "dashboards")]
    assert offenders == []
