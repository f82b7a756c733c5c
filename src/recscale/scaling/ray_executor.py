"""The Ray executor: each run of a sweep is one Ray task with the resources it asks for.

``recscale sweep SPEC --executor ray [--address HOST:PORT]`` connects to a cluster (or, with
no address, to ``RAY_ADDRESS`` or a Ray started on this machine) and submits one task per
open run with ``num_cpus``/``num_gpus`` from the spec's ``resources`` or the command line.
A task claims its run like any other worker (:mod:`recscale.scaling.claims`), so if its
worker process dies Ray runs it again (``max_retries``) and the new attempt takes the run
over and resumes from ``checkpoints/last``. Every node must see the sweep directory at the
same path (a shared filesystem) and have recscale installed. Ray is optional:
``pip install 'recscale[ray]'``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recscale.errors import RecscaleError
from recscale.scaling.claims import (
    OPEN,
    RunJob,
    mark_failed,
    run_state,
    train_claimed,
    train_run,
)
from recscale.scaling.sweep_log import collect_records, replay

if TYPE_CHECKING:
    from recscale.scaling.executors import ExecutorOptions

log = logging.getLogger(__name__)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RecscaleError(
            "--executor ray needs Ray: pip install 'recscale[ray]' (or ray[default])"
        ) from None
    return ray


def ray_train(out: str, job: RunJob, since: float, threads: int | None) -> dict[str, Any]:
    """The task: claim the run (waiting if another worker holds it) and train it. The claim
    records this worker's pid and host (``locks/<run>.owner.json``, ``claims.jsonl``)."""
    with collect_records() as records:
        outcome = train_claimed(
            Path(out), job, since, partial(train_run, threads=threads), wait=True
        )
    assert outcome is not None  # a waiting claim always comes through
    return {
        "state": outcome.state,
        "error": outcome.error,
        "took_over": outcome.took_over,
        "records": records,
    }


class RayExecutor:
    """A Ray cluster: one task per run, retried from its checkpoint when a worker dies."""

    description = "a Ray cluster: one task per run (--address, resources, --max-retries)"

    def __init__(self, options: ExecutorOptions) -> None:
        if options.jobs != 1:
            raise RecscaleError("--jobs is for --executor local; Ray schedules by resources")
        if options.max_retries < 0:
            raise RecscaleError(f"--max-retries {options.max_retries}: must be 0 or more")
        self.address = options.address
        self.cpus = 1.0 if options.cpus is None else options.cpus
        self.gpus = 0.0 if options.gpus is None else options.gpus
        self.max_retries = options.max_retries
        if importlib.util.find_spec("ray") is None:  # say so before any run starts
            _ray()

    def run(self, out: Path, jobs: Sequence[RunJob], since: float) -> None:
        ray = _ray()
        started_here = not ray.is_initialized()
        if started_here:
            # Task output stays in the workers' logs: warnings come back with each result
            # and are said once by the sweep.
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        try:
            task = ray.remote(ray_train).options(
                num_cpus=self.cpus,
                num_gpus=self.gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
                name="recscale-run",
            )
            threads = max(1, int(self.cpus))  # torch threads: what the task was given
            pending = {
                task.remote(str(out), job, since, threads): job
                for job in jobs
                if run_state(out, job.name, since) == OPEN
            }
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    self._collect(ray, ref, pending.pop(ref), out)
        finally:
            if started_here:
                ray.shutdown()

    def _collect(self, ray: Any, ref: Any, job: RunJob, out: Path) -> None:
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            # Lost more workers than max_retries allows (or Ray itself failed).
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            error = f"{type(exc).__name__}: {reason}"
            mark_failed(out, job.name, error)
            log.warning("%s: Ray gave up after %d retries: %s", job.name, self.max_retries, error)
            return
        replay(result["records"])
