"""A real ``torchrun --nproc_per_node=2`` (gloo) run agrees with a single-process evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recscale.config import dump_yaml
from recscale.train.runs import evaluate_run
from tests.train.test_trainer import tiny_config, write_sequences


@pytest.mark.slow
def test_torchrun_two_ranks_metrics_equal_single_process_evaluation(tmp_path: Path):
    data = write_sequences(tmp_path / "cycle.txt", users=61)  # odd: ranks get unequal shards
    cfg = tiny_config(data, "train.epochs=2", "eval.track_test=false")
    config_path = tmp_path / "run.yaml"
    dump_yaml(cfg, config_path)
    run_dir = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "recscale.cli",
            "train",
            str(config_path),
            "--out",
            str(run_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((run_dir / "final.json").read_text())
    assert final["facts"]["hardware"]["world_size"] == 2

    single = evaluate_run(run_dir, split="test")["metrics"]
    for key, value in final["test"].items():
        assert value == pytest.approx(single[key], rel=1e-5, abs=1e-7), key
