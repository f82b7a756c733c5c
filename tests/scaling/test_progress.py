"""Time left for a sweep: from finished runs' wall times against their FLOPs."""

from __future__ import annotations

import io

import pytest

from recscale.scaling.progress import PENDING, RUNNING, RunStatus, estimate, time_model
from recscale.scaling.sweep_view import LineView, duration


def test_time_model_fits_a_fixed_part_and_a_part_per_flop():
    model = time_model([(10 + 2e-9 * c, c) for c in (1e9, 3e9, 8e9)])
    assert model(5e9) == pytest.approx(20.0)
    one = time_model([(40.0, 1e9)])  # one run: half fixed, half proportional
    assert one(1e9) == pytest.approx(40.0) and one(3e9) == pytest.approx(80.0)
    unknown = time_model([(30.0, None), (50.0, None)])
    assert unknown(1e12) == pytest.approx(40.0)
    assert time_model([]) is None


def test_estimate_adds_pending_runs_and_running_runs_extrapolate_themselves():
    statuses = [
        RunStatus("a", "finished", fraction=1.0, elapsed_s=20.0, cost=1e9),
        RunStatus("b", "finished", fraction=1.0, elapsed_s=40.0, cost=3e9),
        # Half done after 30 s, last epoch logged 5 s ago: 25 s left.
        RunStatus("c", RUNNING, fraction=0.5, elapsed_s=30.0, since_epoch_s=5.0, cost=3e9),
        RunStatus("d", PENDING, cost=2e9),  # 10 s + 10 s per 1e9 FLOPs -> 30 s
    ]
    est = estimate(statuses)
    assert est.remaining_s == pytest.approx({"c": 25.0, "d": 30.0})
    assert est.overall_s == pytest.approx(55.0)  # one run at a time
    assert est.done == 2 and est.total == 4 and est.completed == pytest.approx(2.5)
    before_any = estimate([RunStatus("x", RUNNING), RunStatus("y", PENDING)])
    assert before_any.overall_s is None and before_any.remaining_s == {"x": None, "y": None}


def test_line_view_numbers_finished_runs_and_says_time_left():
    out = io.StringIO()
    view = LineView("sweep s", stream=out)
    first = [RunStatus("a", "finished", 1.0, elapsed_s=20.0, cost=1e9), RunStatus("b", PENDING)]
    view.update(first, estimate(first))
    running = [first[0], RunStatus("b", RUNNING, 0.5, epoch=2, epochs=4, elapsed_s=10.0)]
    view.update(running, estimate(running))
    done = [first[0], RunStatus("b", "finished", 1.0, epoch=4, epochs=4, elapsed_s=21.0)]
    view.update(done, estimate(done))
    assert out.getvalue().splitlines() == [
        "      b epoch 2/4 · run 10 s left · sweep 75%, 10 s left",
        "[2/2] b finished in 21 s · sweep 100%, 0 s left",
    ]
    assert duration(75.2) == "1 min 15 s" and duration(3 * 3600 + 120) == "3 h 02 min"


def test_scan_reads_claims_epochs_and_a_dead_holder_from_the_directory(tmp_path):
    import json
    import os
    import socket

    from recscale.scaling.progress import scan
    from recscale.train.config import load_run_config

    cfgs = [
        load_run_config(overrides=[f"name={n}", "train.epochs=4", "train.max_tokens=1000"])
        for n in ("a", "b", "c")
    ]
    locks, runs = tmp_path / "locks", tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name).mkdir(parents=True)
    locks.mkdir()
    host = socket.gethostname()
    (locks / "a.owner.json").write_text(json.dumps({"host": host, "pid": os.getpid(), "since": 0}))
    (runs / "a" / "metrics.jsonl").write_text(
        json.dumps({"epoch": 1, "tokens": 250, "wall_time_s": 3.0}) + "\n"
    )
    gone = {"host": host, "pid": 2**22 + 12345, "since": 0}  # above Linux's pid_max
    (locks / "b.owner.json").write_text(json.dumps(gone))
    a, b, c = scan(tmp_path, cfgs, since=0.0)
    assert (a.state, a.epoch, a.epochs, a.fraction) == (RUNNING, 1, 4, 0.25)
    assert a.holder == f"pid {os.getpid()} on {host}"
    assert b.state == PENDING and c.state == PENDING  # b's holder is gone
