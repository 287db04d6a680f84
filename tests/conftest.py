import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def real_logs_dir() -> Path:
    """Public training logs of other projects: read where they lie, never copied into the project."""
    return Path(os.environ.get("GRPO_DIAG_REAL_LOGS") or ROOT.parent / "shared" / "real_logs")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One model cache for the session: the tiny model and SFT bases are built once."""
    d = os.environ.get("GRPO_DIAG_TEST_CACHE") or str(tmp_path_factory.getbasetemp().parent / "grpo-diag-cache")
    os.environ["GRPO_DIAG_CACHE"] = d
    return Path(d)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


@pytest.fixture(scope="session")
def demo_runs(cache_dir, tmp_path_factory):
    """The demo's three runs, made once per test worker (tests that use it share an xdist group).

    GRPO_DIAG_DEMO_RUNS points at runs made earlier (e.g. by `make demo`) to skip the ~3 minutes."""
    given = os.environ.get("GRPO_DIAG_DEMO_RUNS")
    if given:
        return Path(given)
    from training.cli import quiet_libraries
    from training.demo import run_demo

    quiet_libraries()
    out = tmp_path_factory.mktemp("demo-runs")
    run_demo(str(out))
    return out
