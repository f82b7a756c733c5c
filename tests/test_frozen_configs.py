"""Every frozen benchmark config and sweep file validates, and states what it targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from recscale.scaling.sweep import load_spec
from recscale.train.config import load_run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BENCHMARKS = sorted((CONFIGS / "benchmarks").glob("*.yaml"))
SWEEPS = sorted((CONFIGS / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_config_validates_and_has_a_header(path: Path) -> None:
    text = path.read_text()
    cfg = load_run_config(path)
    assert cfg.name == path.stem
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert f"configs/benchmarks/{path.name}" in header, "the header states the command"
    assert "Reached" in header


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_expands(path: Path) -> None:
    spec, runs = load_spec(path)
    assert runs and spec.name == path.stem
