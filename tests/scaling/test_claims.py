"""Claims on runs: held runs are skipped, dead holders are taken over, failures are marked."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from recscale.scaling.claims import (
    FAILED,
    FINISHED,
    OPEN,
    Claim,
    RunJob,
    failures,
    run_dir,
    run_state,
    train_claimed,
    work_through,
)
from recscale.scaling.sweep_log import collect_records, replay, sweep_logging


def finish(config: dict, folder: Path) -> None:
    """A stand-in trainer: writes final.json like a finished run."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "final.json").write_text(json.dumps({"trained_by": config["who"]}))


def test_a_held_run_is_skipped_and_a_free_one_trained(tmp_path):
    since = time.time()
    held = Claim(tmp_path, "a")
    assert held.acquire()
    assert train_claimed(tmp_path, RunJob("a", {"who": "me"}), since, finish) is None
    outcome = train_claimed(tmp_path, RunJob("b", {"who": "me"}), since, finish)
    assert outcome is not None and outcome.state == FINISHED and outcome.trained
    assert run_state(tmp_path, "a", since) == OPEN and run_state(tmp_path, "b", since) == FINISHED
    held.release()
    # Released, a finished run is not trained again.
    again = train_claimed(tmp_path, RunJob("b", {"who": "other"}), since, finish)
    assert again is not None and not again.trained
    assert json.loads((run_dir(tmp_path, "b") / "final.json").read_text()) == {"trained_by": "me"}


def test_an_owner_record_left_by_a_dead_holder_is_a_takeover(tmp_path):
    (tmp_path / "locks").mkdir()
    dead = {"host": "elsewhere", "pid": 4242, "since": 0.0}
    (tmp_path / "locks" / "a.owner.json").write_text(json.dumps(dead))
    outcome = train_claimed(tmp_path, RunJob("a", {"who": "me"}), time.time(), finish)
    assert outcome is not None and outcome.took_over == "pid 4242 on elsewhere"
    claims = [json.loads(x) for x in (run_dir(tmp_path, "a") / "claims.jsonl").open()]
    assert [c["took_over"] for c in claims] == ["pid 4242 on elsewhere"]
    assert not (tmp_path / "locks" / "a.owner.json").exists()  # released: no owner left


def test_a_run_failing_twice_is_marked_failed_for_this_sweep_only(tmp_path):
    calls = []

    def broken(config: dict, folder: Path) -> None:
        calls.append(folder.name)
        raise ValueError("no such file")

    since = time.time()
    [outcome] = work_through(tmp_path, [RunJob("a", {})], since, broken, poll_s=0.01)
    assert outcome.state == FAILED and calls == ["a", "a"]
    assert "Traceback" in (run_dir(tmp_path, "a") / "error.txt").read_text()
    assert failures(tmp_path, ["a"]) == {"a": "ValueError: no such file"}
    assert run_state(tmp_path, "a", since) == FAILED
    # A sweep started later tries it again.
    assert run_state(tmp_path, "a", time.time() + 1) == OPEN


def test_work_through_waits_for_a_held_run_and_takes_it_when_its_holder_lets_go(tmp_path):
    held = Claim(tmp_path, "a")
    assert held.acquire()
    trained = []

    def record(config: dict, folder: Path) -> None:
        trained.append(folder.name)
        if folder.name == "b":
            held.release()  # the other worker dies (its flock goes) while we train b
        finish({"who": "me"}, folder)

    outcomes = work_through(
        tmp_path, [RunJob("a", {}), RunJob("b", {})], time.time(), record, poll_s=0.01
    )
    assert trained == ["b", "a"] and [o.name for o in outcomes] == ["b", "a"]


def test_each_warning_is_said_once_per_sweep_and_counted():
    said = []
    hstu = logging.getLogger("recscale.models.hstu")
    with collect_records() as records:  # as a Ray task gathers them in its worker
        hstu.warning("HSTU: no timestamps given")
        logging.getLogger("recscale.scaling.claims").info("a: taking over")
    with sweep_logging(said.append) as once:
        for _ in range(6):
            hstu.warning("HSTU: no timestamps given")
        replay(records)
    assert said == ["warning: HSTU: no timestamps given", "a: taking over"]
    assert once.repeats() == [("warning: HSTU: no timestamps given", 7)]
