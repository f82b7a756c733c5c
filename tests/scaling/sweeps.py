"""Small synthetic sweeps and real ``recscale sweep`` processes, shared by the sweep tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import yaml

from tests.train.test_trainer import write_sequences

SIZES = [(1, 8), (1, 12), (1, 16), (2, 8), (2, 12), (2, 16)]


def tiny_sweep(root: Path, *, epochs: int = 2, users: int = 60, sizes=SIZES) -> Path:
    """A spec of ``len(sizes)`` tiny HSTU runs on a cyclic sequence file; returns its path."""
    root.mkdir(parents=True, exist_ok=True)
    data = write_sequences(root / "cycle.txt", users=users)
    spec = {
        "name": "tiny",
        "laws": ["power_n:loss"],
        "base": {
            "seed": 0,
            "data": {"name": None, "path": str(data), "format": "sasrec"},
            "model": {"backbone": "hstu", "heads": 1, "max_len": 12},
            "loss": {"name": "sampled_softmax", "num_negatives": 8},
            "train": {
                "epochs": epochs,
                "batch_size": 16,
                "patience": None,
                "progress": False,
                "device": "cpu",
            },
            "eval": {"protocol": "full", "ks": [1, 10]},
        },
        "points": [{"model.layers": n, "model.dim": d} for n, d in sizes],
    }
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def start_sweep(spec: Path, out: Path, *extra: str, log: Path | None = None) -> subprocess.Popen:
    """A real ``recscale sweep`` process (its output in ``log``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "recscale.cli", "sweep", str(spec), "--out", str(out), *extra]
    sink = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread, as the sweep processes (OMP_NUM_THREADS=1): same numbers."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def epochs_logged(out: Path, run: str) -> list[int]:
    lines = (out / "runs" / run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def claims(out: Path, run: str) -> list[dict]:
    path = out / "runs" / run / "claims.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for_epochs(out: Path, run: str, at_least: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    path = out / "runs" / run / "metrics.jsonl"
    while time.monotonic() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= at_least:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{run} logged fewer than {at_least} epochs in {timeout_s} s")


def comparable(out: Path) -> pl.DataFrame:
    """The results table without what legitimately differs between sweeps (wall time)."""
    return pl.read_parquet(out / "results.parquet").drop("wall_time_s")
