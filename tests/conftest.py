import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


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
