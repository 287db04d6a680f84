"""The notebooks run top to bottom (small settings) and are committed without outputs."""

from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def test_notebooks_without_outputs():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]
    for p in NOTEBOOKS:
        nb = nbformat.read(p, as_version=4)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code"), f"{p.name} has outputs: strip them"
        assert "import diag" in "".join(c.source for c in nb.cells)
        assert not any("import training" in c.source or "from training" in c.source for c in nb.cells)


@pytest.fixture(scope="module")
def small_experiments(tmp_path_factory, cache_dir):
    """A smoke-sized experiment grid (both bases, SFT / GRPO / SFT-then-GRPO)."""
    from training.experiments.__main__ import main

    out = tmp_path_factory.mktemp("experiments")
    rows = main(["--small", "--out", str(out)])
    assert len(rows) == 6 and all(r["buckets"] for r in rows)
    return out


@pytest.fixture(scope="module")
def small_vlm_experiments(tmp_path_factory, cache_dir):
    """A smoke-sized VLM grid: both shipped VLM bases, GRPO and SFT on images, SFT on text."""
    from training.experiments.vlm import main

    out = tmp_path_factory.mktemp("vlm-experiments")
    assert len(main(["--small", "--out", str(out)])) == 6
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, demo_runs, small_experiments, small_vlm_experiments, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("GRPO_DIAG_RUNS", str(demo_runs))
    monkeypatch.setenv("GRPO_DIAG_EXPERIMENTS", str(small_experiments))
    monkeypatch.setenv("GRPO_DIAG_VLM_EXPERIMENTS", str(small_vlm_experiments))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    if path.name.startswith(("01", "02")):
        assert "agrees with" in text  # the demo reproduces these two claims
    if path.name.startswith("03"):
        assert "in this miniature SFT" in text
    if path.name.startswith("04"):
        assert "spread" in text
    if path.name.startswith("05"):  # a verdict for each claim and base, whichever way it goes
        assert text.count("claim 1 in this miniature") == 2 and text.count("claim 2 (transfer)") == 2
