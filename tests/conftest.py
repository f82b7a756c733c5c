"""Shared test set-up: the data mirror and a private cache directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = REPO.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("RECSCALE_DATA_MIRROR", str(DEFAULT_MIRROR))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test session caches datasets in its own directory, never in ~/.cache."""
    home = os.environ.get("RECSCALE_TEST_HOME")
    if home is None:
        home = str(tmp_path_factory.getbasetemp() / "recscale-home")
        os.environ["RECSCALE_TEST_HOME"] = home
    monkeypatch.setenv("RECSCALE_HOME", home)


@pytest.fixture
def mirror() -> Path:
    path = Path(os.environ["RECSCALE_DATA_MIRROR"])
    if not path.is_dir():
        pytest.fail(f"data mirror {path} is missing; set RECSCALE_DATA_MIRROR")
    return path
