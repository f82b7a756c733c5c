"""Claims: how any number of workers share one sweep directory and train each run once.

A worker trains a run only while it holds the run's lock, ``<sweep>/locks/<run>.lock``, an
``flock`` taken with :mod:`filelock`. The OS drops an ``flock`` when its holder dies, so a
killed worker leaves no stale lock: the next worker to try takes the run over and resumes it
from ``checkpoints/last``. Beside the lock, ``<run>.owner.json`` names the holder (host, pid,
since when); a takeover reads the dead holder's record before it writes its own.

Each claim that trains a run appends its holder to ``runs/<run>/claims.jsonl``.
A run is *finished* when it has ``final.json``; it is *failed* when it raised twice in a row
and wrote ``failed.json`` after this sweep started (so a sweep started later tries it again).
:func:`work_through` is one worker's loop: claim what is free without waiting, come back to
the runs others hold, return when every run is finished or failed. Workers may be processes
on one machine or on several machines sharing the directory (NFS and Lustre give ``flock``
across clients; a filesystem without it is refused rather than silently unlocked).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from recscale.errors import RecscaleError
from recscale.train.record import FINAL_JSON

log = logging.getLogger(__name__)

LOCKS = "locks"
FAILED_JSON = "failed.json"
ERROR_TXT = "error.txt"
CLAIMS_JSONL = "claims.jsonl"  # one line per claim that trained the run
FINISHED, FAILED, OPEN = "finished", "failed", "open"


@dataclass(frozen=True)
class RunJob:
    """What a worker needs to train one run: its name and its resolved config as JSON."""

    name: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What became of one run a worker claimed. ``took_over`` names the dead holder."""

    name: str
    state: str  # FINISHED or FAILED
    error: str | None = None
    took_over: str | None = None
    trained: bool = False  # False: it was already done when the claim came through


def run_dir(out: Path, name: str) -> Path:
    return out / "runs" / name


def run_state(out: Path, name: str, since: float) -> str:
    """FINISHED, FAILED (a failure recorded at or after ``since``) or OPEN."""
    folder = run_dir(out, name)
    if (folder / FINAL_JSON).is_file():
        return FINISHED
    failed = read_json(folder / FAILED_JSON)
    if failed is not None and failed.get("at", 0.0) >= since:
        return FAILED
    return OPEN


def failures(out: Path, names: Sequence[str]) -> dict[str, str]:
    """``{run: error}`` for every run without ``final.json`` whose last attempt failed, and
    every run whose ``final.json`` records a fault (a non-finite loss stopped it)."""
    found = {}
    for name in names:
        folder = run_dir(out, name)
        final = read_json(folder / FINAL_JSON)
        if final is not None:
            if final.get("failure"):
                found[name] = str(final["failure"])
            continue
        failed = read_json(folder / FAILED_JSON)
        if failed is not None:
            found[name] = failed.get("error", "unknown error")
    return found


def holder(out: Path, name: str) -> dict[str, Any] | None:
    """The owner record of the run's claim (``None`` when nobody has claimed it)."""
    return read_json(out / LOCKS / f"{name}.owner.json")


class Claim:
    """The lock on one run; ``acquire`` never blocks unless asked to."""

    def __init__(self, out: Path, name: str) -> None:
        (out / LOCKS).mkdir(parents=True, exist_ok=True)
        self.name = name
        self.owner_path = out / LOCKS / f"{name}.owner.json"
        self.lock = FileLock(out / LOCKS / f"{name}.lock", fallback_to_soft=False)
        self.previous: dict[str, Any] | None = None
        self.me: dict[str, Any] = {}

    def acquire(self, wait: bool = False) -> bool:
        try:
            self.lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return False
        except OSError as exc:
            raise RecscaleError(
                f"cannot lock {self.lock.lock_file} ({exc.strerror}); sweep workers need a "
                "filesystem with flock (local disks, NFSv4, Lustre)"
            ) from None
        # An owner record left behind means its holder died holding the run.
        self.previous = read_json(self.owner_path)
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        atomic_write_text(self.owner_path, json.dumps(self.me))
        return True

    def release(self) -> None:
        self.owner_path.unlink(missing_ok=True)
        self.lock.release()


def train_claimed(
    out: Path,
    job: RunJob,
    since: float,
    train_one: Callable[[dict[str, Any], Path], None],
    *,
    wait: bool = False,
) -> Outcome | None:
    """Claim ``job`` and, unless it is finished or failed already, train it.

    ``train_one(config, run_dir)`` trains (resuming from a checkpoint); it is retried once
    and then the run is marked failed. Returns ``None`` when another worker holds the run.
    """
    claim = Claim(out, job.name)
    if not claim.acquire(wait=wait):
        return None
    try:
        state = run_state(out, job.name, since)
        if state != OPEN:
            return Outcome(job.name, state)
        took_over = None
        if claim.previous is not None:
            took_over = f"pid {claim.previous['pid']} on {claim.previous['host']}"
            log.info("%s: taking over from %s, resuming from its checkpoint", job.name, took_over)
        folder = run_dir(out, job.name)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / CLAIMS_JSONL, "a") as fh:  # who trained the run, for the record
            fh.write(json.dumps({**claim.me, "took_over": took_over}) + "\n")
        error = None
        for _attempt in range(2):
            try:
                train_one(job.config, folder)
                (folder / FAILED_JSON).unlink(missing_ok=True)
                return Outcome(job.name, FINISHED, took_over=took_over, trained=True)
            except Exception as exc:  # a failed run must not stop the sweep
                error = f"{type(exc).__name__}: {exc}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / ERROR_TXT).write_text(traceback.format_exc())
        mark_failed(out, job.name, error or "unknown error")
        return Outcome(job.name, FAILED, error=error, took_over=took_over, trained=True)
    finally:
        claim.release()


def mark_failed(out: Path, name: str, error: str) -> None:
    folder = run_dir(out, name)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"error": error, "at": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
    atomic_write_text(folder / FAILED_JSON, json.dumps(record, indent=1))


def work_through(
    out: Path,
    jobs: Sequence[RunJob],
    since: float,
    train_one: Callable[[dict[str, Any], Path], None],
    *,
    poll_s: float = 0.5,
) -> list[Outcome]:
    """One worker's share of a sweep: train every run it can claim, then wait for the runs
    other workers hold (taking over any whose holder dies). Returns this worker's outcomes."""
    outcomes: list[Outcome] = []
    pending = [j for j in jobs if run_state(out, j.name, since) == OPEN]
    while pending:
        held = []
        for job in pending:
            outcome = train_claimed(out, job, since, train_one)
            if outcome is None:
                held.append(job)
            elif outcome.trained:
                outcomes.append(outcome)
        pending = [j for j in held if run_state(out, j.name, since) == OPEN]
        if pending:
            time.sleep(poll_s)
    return outcomes


def train_run(config: dict[str, Any], folder: Path, threads: int | None = None) -> None:
    """Train one run into ``folder``, resuming from ``checkpoints/last`` if it has one."""
    import torch

    from recscale.train.config import RunConfig
    from recscale.train.trainer import train

    if threads:
        torch.set_num_threads(threads)
    # A resume trims metrics.jsonl to its checkpoint, so every epoch is logged once.
    train(RunConfig.model_validate(config), folder, resume=True)


# ---- small file helpers ----------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or ``None`` if it is missing (or caught mid-write)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` a sibling temporary file, then rename it over ``path``: a reader sees the
    old file or the new one, never half of one, however many workers write at once."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
