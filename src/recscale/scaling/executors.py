"""Executors: where a sweep's runs are trained. A registry choice (``--executor local|ray``).

Every executor hands each run to :func:`~recscale.scaling.claims.train_claimed`, so the
claim on a run, its retry and its takeover after a dead worker are the same wherever it
trains, and local workers, other ``recscale sweep`` processes and Ray tasks can share one
sweep directory. An executor returns when every run is finished or failed.

- ``local``: this process trains (``jobs=1``), or ``jobs`` worker processes share the runs.
- ``ray``: one Ray task per run on a cluster (:mod:`recscale.scaling.ray_executor`).
"""

from __future__ import annotations

import ctypes
import logging
import logging.handlers
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

from recscale.errors import RecscaleError
from recscale.registry import Registry
from recscale.scaling.claims import RunJob, train_run, work_through
from recscale.scaling.ray_executor import RayExecutor
from recscale.scaling.sweep_log import worker_logging


@dataclass(frozen=True)
class ExecutorOptions:
    """What the sweep command says about where runs go. ``cpus``/``gpus`` are per run (the
    spec's ``resources`` when not given); ``max_retries`` counts retries after a lost worker."""

    jobs: int = 1
    address: str | None = None
    cpus: float | None = None
    gpus: float | None = None
    max_retries: int = 3


class Executor(Protocol):
    def run(self, out: Path, jobs: Sequence[RunJob], since: float) -> None:
        """Train every open run of ``jobs`` into ``out``; return when all are done."""
        ...


EXECUTORS: Registry[Callable[[ExecutorOptions], Executor]] = Registry("executor")


@EXECUTORS.register("local")
class LocalExecutor:
    """Trains on this machine: in this process, or in ``jobs`` worker processes."""

    description = "this machine: this process, or --jobs worker processes"

    def __init__(self, options: ExecutorOptions) -> None:
        if options.address is not None:
            raise RecscaleError("--address names a Ray cluster; use it with --executor ray")
        if options.jobs < 1:
            raise RecscaleError(f"--jobs {options.jobs}: must be at least 1")
        self.jobs = options.jobs
        threads = int(options.cpus) if options.cpus else None
        if threads is None and options.jobs > 1:
            threads = max(1, (os.cpu_count() or 1) // options.jobs)
        self.threads = threads

    def run(self, out: Path, jobs: Sequence[RunJob], since: float) -> None:
        if self.jobs > 1:
            self._run_workers(out, jobs, since)
        # Alone, or after the workers: anything a crashed worker left, and runs that other
        # sweep processes hold, until every run is done.
        work_through(out, jobs, since, partial(train_run, threads=self.threads))

    def _run_workers(self, out: Path, jobs: Sequence[RunJob], since: float) -> None:
        ctx = get_context("spawn")
        queue = ctx.Queue()
        # Workers' log records come here, so the sweep says each warning once.
        listener = logging.handlers.QueueListener(queue, _Replay())
        listener.start()
        try:
            args = (str(out), list(jobs), since, self.threads, queue, os.getpid())
            workers = [ctx.Process(target=_worker, args=args) for _ in range(self.jobs)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        finally:
            listener.stop()


def _worker(
    out: str, jobs: list[RunJob], since: float, threads: int | None, queue, parent: int
) -> None:
    die_with_parent(parent)
    with worker_logging(logging.handlers.QueueHandler(queue)):
        work_through(Path(out), jobs, since, partial(train_run, threads=threads))


def die_with_parent(parent: int) -> None:
    """On Linux, have the kernel send this worker SIGTERM when the sweep process ``parent``
    dies. An orphaned worker would go on training its run and claiming more, writing into a
    sweep directory its user has stopped (or moved, or reused for another spec); killed, its
    run resumes from its last checkpoint when the sweep is run again."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _Replay(logging.Handler):
    """Hands a record from a worker process to this process's loggers."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


EXECUTORS.register("ray")(RayExecutor)
