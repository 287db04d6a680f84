"""A sweep judged at once: `grpo-diag check FOLDER` (diag.sweep), the cards kept beside its runs
(diag.card), the runs page filtered by verdict and the compare page picking runs by verdict."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks.judge import write_run
from diag import card
from diag.cli import main


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Four runs written through diag.Recorder: one whose held-out accuracy falls while the reward rises,
    three flat; and one folder that is not a run at all (its run.json unreadable)."""
    root = tmp_path_factory.mktemp("sweep")
    write_run(str(root), "falls", 300, seed=0, falls=True)
    for i in range(3):
        write_run(str(root), f"flat-{i}", 300, seed=i + 1)
    return root


def test_check_on_a_folder_lists_each_run_worst_first_and_counts_verdicts(sweep, capsys):
    assert main(["check", str(sweep), "--jobs", "2"]) == 1  # a critical decoupling fires on one run
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5  # one per run, then the counts
    assert lines[0].startswith("[critical] falls ends DECOUPLED")
    assert lines[-1].startswith("4 runs: ") and "1 decoupled" in lines[-1]
    assert [ln.split()[1] for ln in lines[1:4]] == sorted(ln.split()[1] for ln in lines[1:4])  # by name within a rank


def test_check_json_gives_one_record_per_run_and_a_broken_run_its_own_error(sweep, tmp_path, capsys):
    broken = tmp_path / "runs"
    (broken / "bad").mkdir(parents=True)
    (broken / "bad" / "run.json").write_text("{not json")
    assert main(["check", str(sweep), str(broken / "bad"), "--json", "--jobs", "1"]) == 2  # unreadable: exit 2
    out = capsys.readouterr()
    records = json.loads(out.out)
    assert [r["run"] for r in records] == ["falls", "flat-0", "flat-1", "flat-2", "bad"]
    assert "error" in records[-1] and "bad" in out.err  # the others judged all the same; the broken one named
    falls = records[0]
    assert falls["verdict"]["ends"] == ["decoupled"] and any(f["kind"] == "decoupling" for f in falls["findings"])
    assert falls["explain"] is not None  # a firing decoupling gets the reward-gaming patterns, as for one run


def test_a_path_that_holds_no_run_is_an_error_naming_it(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 2
    assert "neither a run" in capsys.readouterr().err


def test_cards_list_the_runs_without_opening_them_and_go_stale_with_the_run(sweep):
    from dashboards import query
    from dashboards.pages import compare, runs

    assert main(["check", str(sweep), "--jobs", "1"]) == 1  # writes each run's card (default options)
    store = query.Store(sweep)
    table = store.runs_table()
    assert not store._runs  # every line read from a card: no run opened
    fresh = query.Store(sweep)
    opened = [fresh._runs_row(n) for n in fresh.names() if card.load(sweep / n) and fresh.get(n)]
    assert table == opened  # the card is the line the page makes from the opened run
    assert [r["run"] for r in runs.rows(store, ["decoupled"])] == ["[falls](/run/falls)"]
    assert compare.picked(store, "decoupled") == ["falls"] and len(compare.picked(store, "clean")) == 3

    seg = sorted((sweep / "flat-0" / "steps").iterdir())[-1]
    shutil.copy(seg, seg.with_name("seg-999998-999999.parquet"))  # a segment a recorder (or a compaction) added
    assert card.load(sweep / "flat-0") is None  # the card no longer holds: the line is made again
    assert card.load(sweep / "flat-1") is not None


def test_a_card_cannot_rename_its_run_on_the_page(sweep):
    """The runs page names a run by its checked folder name: a card file that says otherwise (a crafted runs
    root) changes nothing the page links to."""
    from dashboards import query
    from dashboards.pages import runs

    path = sweep / "flat-2"
    assert main(["check", str(path)]) in (0, 1)
    data = json.loads((path / card.FILE).read_text())
    data["row"]["run"] = "x](javascript:alert(1))"
    (path / card.FILE).write_text(json.dumps(data))
    assert card.load(path) is not None  # the stamp still holds: the crafted line is read
    shown = [r["run"] for r in runs.rows(query.Store(sweep))]
    assert "[flat-2](/run/flat-2)" in shown and not any("javascript" in r for r in shown)
