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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_loopback_train_like_one_process_with_the_same_global_batch(tmp_path):
    """``torchrun --nnodes 2`` (one rank per node, static rendezvous on 127.0.0.1) and a
    single process with twice the per-rank batch take the same optimizer steps."""
    from recscale.train import train

    data = write_sequences(tmp_path / "cycle.txt", users=61)
    # No dropout and the full softmax: nothing random differs between the ranks and one process.
    common = ("model.dropout=0", "model.emb_dropout=0", "loss.name=full_softmax", "train.epochs=2")
    config_path = tmp_path / "run.yaml"
    dump_yaml(tiny_config(data, *common, "train.batch_size=8"), config_path)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                str(torchrun),
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={rank}",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                "-m",
                "recscale.cli",
                "train",
                str(config_path),
                "--out",
                str(tmp_path / "two-nodes"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in (0, 1)
    ]
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    two = json.loads((tmp_path / "two-nodes" / "final.json").read_text())
    assert two["facts"]["hardware"]["world_size"] == 2

    one = train(tiny_config(data, *common, "train.batch_size=16"), tmp_path / "one").final
    assert two["facts"]["steps"] == one["facts"]["steps"]
    assert two["facts"]["tokens"] == one["facts"]["tokens"]
    for part in ("valid", "test"):
        for key, value in one[part].items():
            assert two[part][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (part, key)


def _torchrun(ranks: int, config: Path, out: Path, *extra: str) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(torchrun), "--standalone", f"--nproc_per_node={ranks}", "-m", "recscale.cli"]
    command += ["train", str(config), "--out", str(out), *extra]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


# FSDP runs: no dropout, the full softmax, two blocks (two inner FSDP units).
FSDP = (
    "model.dropout=0",
    "model.emb_dropout=0",
    "loss.name=full_softmax",
    "model.layers=2",
    "train.parallelism=fsdp",
)


def _assert_same_run(one: dict, other: dict) -> None:
    assert other["facts"]["steps"] == one["facts"]["steps"]
    assert other["facts"]["tokens"] == one["facts"]["tokens"]
    for part in ("valid", "test"):
        for key, value in one[part].items():
            assert other[part][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (part, key)


@pytest.mark.slow
def test_fsdp_on_two_ranks_trains_like_one_process_with_the_same_global_batch(tmp_path):
    from recscale.train import train

    data = write_sequences(tmp_path / "cycle.txt", users=61)
    config_path = tmp_path / "run.yaml"
    dump_yaml(tiny_config(data, *FSDP, "train.batch_size=8"), config_path)
    _torchrun(2, config_path, tmp_path / "fsdp")
    two = json.loads((tmp_path / "fsdp" / "final.json").read_text())
    assert two["facts"]["hardware"]["world_size"] == 2
    last = json.loads((tmp_path / "fsdp" / "checkpoints" / "last" / "state.json").read_text())
    assert last["layout"] == "sharded" and len(last["sha256"]) == 2  # one shard file per rank

    replicated = (*FSDP[:-1], "train.batch_size=16")
    one = train(tiny_config(data, *replicated), tmp_path / "one").final
    _assert_same_run(one, two)


@pytest.mark.slow
def test_fsdp_checkpoint_of_two_ranks_resumes_on_three(tmp_path):
    """Two ranks train epoch 1 and stop; three ranks (same global batch, 2 x 12 = 3 x 8)
    resume the sharded checkpoint and train epoch 2, like one process training both."""
    from recscale.train import train

    data = write_sequences(tmp_path / "cycle.txt", users=61)
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    dump_yaml(tiny_config(data, *FSDP, "train.batch_size=12", "train.epochs=1"), first)
    dump_yaml(tiny_config(data, *FSDP, "train.batch_size=8", "train.epochs=2"), second)
    _torchrun(2, first, tmp_path / "run")
    _torchrun(3, second, tmp_path / "run", "--resume")
    resumed = json.loads((tmp_path / "run" / "final.json").read_text())
    assert resumed["facts"]["hardware"]["world_size"] == 3

    one = train(tiny_config(data, *FSDP[:-1], "train.batch_size=24"), tmp_path / "one").final
    _assert_same_run(one, resumed)
