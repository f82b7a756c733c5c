"""Faults lose little: a killed run resumes bit-identically from its last mid-epoch
checkpoint, a damaged checkpoint falls back to the one before, and a non-finite loss stops
the run with its reason recorded and the last good state kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from recscale.config import dump_yaml
from recscale.train import checkpoint as ckpt
from recscale.train import train
from recscale.train.trainer import Recipe
from tests.cli_harness import assert_one_line_error, run_cli
from tests.train.test_trainer import tiny_config, write_sequences

# 60 users in batches of 8: 8 optimizer steps per epoch. Dropout, input noise and sampled
# negatives all draw random numbers, so a resume must restore every generator.
FAULT_RUN = (
    "train.epochs=3",
    "train.batch_size=8",
    "train.input_noise=0.1",
    "train.num_threads=1",
)

# Stops a real training process after optimizer step N (its checkpoint every 3 steps is
# then at step 9: epoch 2, one micro-batch in) until the test kills it with SIGKILL.
KILLABLE = """
import os, sys, time
from pathlib import Path
from recscale.train import trainer
marker, stop_at = Path(sys.argv[1]), int(sys.argv[2])
step = trainer.Recipe.optimizer_step
def optimizer_step(self, count):
    out = step(self, count)
    if self.state.step == stop_at:
        marker.write_text(str(os.getpid()))
        time.sleep(300)
    return out
trainer.Recipe.optimizer_step = optimizer_step
from recscale.cli import main
main(sys.argv[3:])
"""


def weights(run: Path, name: str = "last") -> dict[str, np.ndarray]:
    return {
        k: v.numpy()
        for k, v in load_file(str(run / "checkpoints" / name / "model.safetensors")).items()
    }


def assert_same_run(a: Path, b: Path) -> None:
    fa, fb = (json.loads((r / "final.json").read_text()) for r in (a, b))
    assert fa["test"] == fb["test"] and fa["valid"] == fb["valid"]
    assert fa["facts"]["tokens"] == fb["facts"]["tokens"]
    wa, wb = weights(a), weights(b)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    la, lb = (
        [(m["epoch"], m["train_loss"]) for m in map(json.loads, (r / "metrics.jsonl").open())]
        for r in (a, b)
    )
    assert la == lb


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_sequences(tmp_path / "cycle.txt")


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, data_file):
    cfg = tiny_config(data_file, *FAULT_RUN, "train.checkpoint_every_steps=3")
    dump_yaml(cfg, tmp_path / "run.yaml")
    killed, marker = tmp_path / "killed", tmp_path / "stopped"
    command = ["train", str(tmp_path / "run.yaml"), "--out", str(killed)]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, str(marker), "11", *command],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the training process never reached step 11"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "final.json").exists()
    saved = json.loads((killed / "checkpoints" / "last" / "state.json").read_text())
    assert saved["train_state"]["step"] == 9 and saved["train_state"]["micro"] == 1
    assert saved["train_state"]["epoch"] == 1  # one epoch done, the second under way

    train(cfg, killed, resume=True)
    train(cfg, tmp_path / "straight")
    assert_same_run(killed, tmp_path / "straight")


def test_time_based_checkpoints_resume_exactly_after_a_crash(tmp_path, data_file, monkeypatch):
    cfg = tiny_config(data_file, *FAULT_RUN, "train.checkpoint_every_minutes=1e-9")
    step = Recipe.optimizer_step

    def crash_at_13(self, count):
        if self.state.step == 12:
            raise RuntimeError("power cut")
        return step(self, count)

    monkeypatch.setattr(Recipe, "optimizer_step", crash_at_13)
    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg, tmp_path / "crashed")
    monkeypatch.setattr(Recipe, "optimizer_step", step)
    saved = json.loads((tmp_path / "crashed" / "checkpoints" / "last" / "state.json").read_text())
    assert (saved["train_state"]["step"], saved["train_state"]["micro"]) == (12, 4)
    previous = tmp_path / "crashed" / "checkpoints" / "previous" / "state.json"
    assert json.loads(previous.read_text())["train_state"]["step"] == 11

    train(cfg, tmp_path / "crashed", resume=True)
    train(cfg, tmp_path / "straight")
    assert_same_run(tmp_path / "crashed", tmp_path / "straight")


def test_a_damaged_last_checkpoint_falls_back_to_previous(tmp_path, data_file):
    run = tmp_path / "run"
    train(tiny_config(data_file, *FAULT_RUN, "train.epochs=2"), run)
    model = run / "checkpoints" / "last" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])  # truncated, as by a full disk
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_config(data_file, *FAULT_RUN), run, resume=True)
    assert any(issubclass(w.category, ckpt.CheckpointWarning) for w in caught)
    assert "checksum mismatch" in str(caught[0].message)
    assert (run / "checkpoints" / "last.corrupt").is_dir()  # set aside, not kept as previous
    train(tiny_config(data_file, *FAULT_RUN), tmp_path / "straight")
    assert_same_run(run, tmp_path / "straight")


def nan_at(call: int):
    """A ``loss_step`` that returns NaN from its ``call``-th call on."""
    loss_step, calls = Recipe.loss_step, []

    def poisoned(self, batch):
        loss, count = loss_step(self, batch)
        calls.append(1)
        return (loss * float("nan") if len(calls) >= call else loss), count

    return poisoned


def test_a_nan_loss_stops_the_run_keeps_the_last_good_checkpoint_and_says_why(
    tmp_path, data_file, monkeypatch
):
    run = tmp_path / "run"
    cfg = tiny_config(data_file, *FAULT_RUN, "train.checkpoint_every_steps=4")
    monkeypatch.setattr(Recipe, "loss_step", nan_at(11))  # epoch 2, third step
    final = train(cfg, run).final
    assert final["failure"].startswith("non-finite training loss in epoch 2, step 11")
    assert final["stop_reason"] == final["failure"]
    assert json.loads((run / "final.json").read_text())["failure"] == final["failure"]
    assert final["best_epoch"] == 1 and set(final["test"]) >= {"hr@10", "ndcg@10"}
    kept = json.loads((run / "checkpoints" / "last" / "state.json").read_text())["train_state"]
    assert kept["step"] == 8 and not kept["finished"]  # epoch 1's end, no NaN in it
    assert all(np.isfinite(w).all() for w in weights(run).values())
    # Resuming a run stopped by a fault returns its record rather than failing again.
    assert train(cfg, run, resume=True).final == final

    dump_yaml(cfg, tmp_path / "run.yaml")
    args = ["train", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "cli")]
    outcome = run_cli(args, tmp_path)
    assert_one_line_error(outcome, "non-finite training loss", "recorded in final.json")


def test_non_finite_weights_are_never_checkpointed(tmp_path, data_file, monkeypatch):
    step = Recipe.optimizer_step

    def blow_up(self, count):
        out = step(self, count)
        if self.state.step == 5:
            next(self.model.parameters()).data.fill_(float("inf"))
        return out

    monkeypatch.setattr(Recipe, "optimizer_step", blow_up)
    run = tmp_path / "run"
    final = train(tiny_config(data_file, *FAULT_RUN, "train.checkpoint_every_steps=1"), run).final
    assert final["failure"].startswith("non-finite weights after step 5")
    assert final["test"] == {}  # no evaluation yet, so no weights worth scoring
    kept = json.loads((run / "checkpoints" / "last" / "state.json").read_text())
    assert kept["train_state"]["step"] == 4


def test_a_sweep_counts_a_nan_stop_among_its_failures(tmp_path, data_file, monkeypatch):
    from recscale.scaling.claims import failures, run_dir, train_run

    monkeypatch.setattr(Recipe, "loss_step", nan_at(3))
    config = tiny_config(data_file, *FAULT_RUN).model_dump(mode="json")
    train_run(config, run_dir(tmp_path, "run"))
    error = failures(tmp_path, ["run"]).get("run")
    assert error is not None and error.startswith("non-finite training loss in epoch 1, step 3")
