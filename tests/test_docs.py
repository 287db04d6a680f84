"""The documentation site: built strictly (a broken page, link or snippet fails), and its results page
drawn from the results file with whatever a benchmark recorded escaped."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).parent / "mkdocs"
pytestmark = pytest.mark.skipif(not MKDOCS.exists(), reason="mkdocs not installed (the docs extra)")


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(site)], cwd=root,
                          capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strictly(tmp_path):
    r = build(ROOT, tmp_path / "site")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "site" / "results" / "index.html").is_file()
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "grpo-diag watch" in cli  # the CLI page is the README's block, included, not copied


def build_with(tmp_path: Path, added: str) -> subprocess.CompletedProcess:
    """The site built from a copy of the docs with `added` appended to one guide."""
    copy = tmp_path / "repo"
    for part in ("docs", "benchmarks", "mkdocs.yml", "README.md"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy / part)
    for meta in (ROOT / "training" / "bases").glob("*/base.json"):  # the shipped bases' figures the guides cite
        (copy / meta.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(meta, copy / meta.relative_to(ROOT))
    page = copy / "docs" / "watch.md"
    page.write_text(page.read_text() + "\n\n" + added + "\n")
    return build(copy, tmp_path / "site")


def test_a_broken_link_fails_the_build(tmp_path):
    r = build_with(tmp_path, "See [the missing guide](no-such-page.md).")
    assert r.returncode != 0 and "no-such-page.md" in r.stderr + r.stdout


def test_results_page_escapes_what_it_renders():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from results_page import render

    md = render({"x": {"when": "2026-12-06", "machine": "m", "command": "python benchmarks/x.py",
                       "result": {"<b>k</b>": "<script>alert(1)</script>", "ratio": 0.123456}}})
    assert "<script>" not in md and "&lt;script&gt;" in md and "0.1235" in md
    assert "No benchmark" in render({})


def test_the_readme_is_a_landing_page():
    """Under 250 lines, with the two commands and the one-line change in it; the manual is in docs/."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    assert "make demo" in text and "make test" in text and "DiagGRPOTrainer(" in text
    for link in ("docs/instrument.md", "docs/detectors.md", "docs/importers.md", "docs/validity.md"):
        assert link in text and (ROOT / link).is_file()


def test_the_validity_tables_are_drawn_from_the_results_file():
    """docs/validity.md holds markers, not numbers: the build draws both tables from the recorded entry
    with the benchmark's own table functions (the same lines `validity.py` prints)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import results_page
    import validity

    g = {"drift": {"runs": 10, "right": 0.9, "false_alarm": 0.1, "median_delay": 8.0, "peer_right": None,
                   "peer_false_alarm": None}}
    rows = [{"name": "r", "label": "healthy", "missed": [], "alerts": [], "ends": "clean", "flagged": False,
             "warning_at_end": False, "false_critical": False}]
    entry = {"when": "2026-12-06", "machine": "m", "command": "python benchmarks/validity.py --runs 10",
             "result": {"peer": False, "real": rows, **{f"generated/{k}": v for k, v in g.items()}}}
    gen = results_page.validity_generated({"validity": entry})
    assert validity.generated_table(g, False) in gen and "python benchmarks/validity.py --runs 10" in gen
    assert validity.real_table(rows, False) in results_page.validity_real({"validity": entry})
    assert "--record" in results_page.validity_generated({})
    page = (ROOT / "docs" / "validity.md").read_text()
    assert "<!-- results:validity-real -->" in page and "| drift |" not in page


def test_a_cited_figure_is_drawn_from_the_results_file_or_stops_the_build(tmp_path):
    """{{ results:ENTRY.KEY|FORMAT }} in a guide becomes the recorded value; a figure the file lacks stops
    the build naming the page, the key and the command; the dashboard guide cites its figures, none typed."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import results_page

    data = {"dash": {"when": "2026-12-06", "machine": "m", "command": "python benchmarks/dashboard.py",
                     "result": {"page_s": 0.91234, "note": "<i>not measured</i>"}}}
    md = "page {{ results:dash.page_s|.2f }} s, {{results:dash.page_s}}; {{ results:dash.note }} ({{ results:dash.when }})"
    assert results_page.figures(md, data) == "page 0.91 s, 0.9123; &lt;i&gt;not measured&lt;/i&gt; (2026-12-06)"
    with pytest.raises(results_page.MissingFigure, match=r"guide.md: cites results:dash.gone .*dashboard.py"):
        results_page.figures("{{ results:dash.gone }}", data, "guide.md")
    with pytest.raises(results_page.MissingFigure, match="no entry 'other'"):
        results_page.figures("{{ results:other.x }}", data)
    data["val"] = {"result": {"generated/drift": {"right": 0.915}}}  # one level into a table
    assert results_page.figures("{{ results:val.generated/drift/right|.1% }}", data) == "91.5%"
    with pytest.raises(results_page.MissingFigure, match="generated/drift/gone"):
        results_page.figures("{{ results:val.generated/drift/gone }}", data)
    data["exp"] = {"result": {"cells": {"b150-sft": {"end": 0.25, "all_fail": None}}}}  # nested tables
    assert results_page.figures("{{ results:exp.cells/b150-sft/end|.2f }}", data) == "0.25"
    assert results_page.figures("{{ results:exp.cells/b150-sft/all_fail|.2f }}", data) == "n/a"  # not measured
    data["exp"]["result"]["demo"] = [{"fall": 119}, {"fall": 43}]  # a row of a list of rows, by its index
    assert results_page.figures("{{ results:exp.demo/1/fall }}", data) == "43"
    assert results_page.figures("{{ results:exp.demo/-1/fall }} {{ results:exp.demo/0/fall }}", data) == "43 119"
    with pytest.raises(results_page.MissingFigure, match="demo/-3/fall"):  # past the first row
        results_page.figures("{{ results:exp.demo/-3/fall }}", data)
    # a shipped base's own measurement, from its base.json
    assert results_page.figures("{{ base:weak.band/1 }} {{ base:strong.heldout_accuracy|.1f }}", data) == "0.06 0.7"
    # ... and its size, measured on the shipped files
    weak = ROOT / "training" / "bases" / "weak"
    size = sum(f.stat().st_size for f in weak.iterdir() if f.is_file()) / 1e6
    assert results_page.figures("{{ base:weak.size_mb|.3f }}", data) == f"{size:.3f}"
    with pytest.raises(results_page.MissingFigure, match="base:weak.gone"):
        results_page.figures("{{ base:weak.gone }}", data)
    with pytest.raises(results_page.MissingFigure, match="base:nope.x"):
        results_page.figures("{{ base:nope.x }}", data)
    with pytest.raises(results_page.MissingFigure, match="cells/b150-sft/gone"):
        results_page.figures("{{ results:exp.cells/b150-sft/gone }}", data)
    r = build_with(tmp_path, "A figure: {{ results:dashboard.no_such_figure }}.")
    assert r.returncode != 0 and "no_such_figure" in r.stderr + r.stdout
    cited = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "{{ results:dashboard.run_page_100k_cold_s" in cited
