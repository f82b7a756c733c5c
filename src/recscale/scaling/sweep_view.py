"""How a running sweep shows itself: progress with time left, per run and overall.

A :class:`Monitor` thread scans the sweep directory once a second
(:func:`recscale.scaling.progress.scan`) and hands the statuses to a view. On a terminal,
:class:`LiveView` keeps rich progress bars (the sweep, and each run in training) with the
estimated time left; elsewhere (a log file, CI), :class:`LineView` prints a line when a run
starts, finishes an epoch, finishes or fails. Either says the sweep's warnings once
(:mod:`recscale.scaling.sweep_log`) above its bars.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from recscale.scaling.claims import FAILED, FINISHED
from recscale.scaling.progress import RUNNING, Estimate, RunStatus, estimate, scan
from recscale.train.config import RunConfig


def duration(seconds: float | None) -> str:
    """``75.2 -> "1 min 15 s"``; ``None`` -> ``"?"``."""
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class View(Protocol):
    def say(self, text: str) -> None: ...
    def update(self, statuses: Sequence[RunStatus], est: Estimate) -> None: ...
    def close(self) -> None: ...


class LineView:
    """One line per event, for logs: ``[2/6] name finished in 41 s · sweep 33%, 3 min left``."""

    def __init__(self, title: str, stream=None) -> None:
        self.title = title
        self.stream = stream or sys.stdout
        self.seen: dict[str, tuple[str, int]] = {}
        self.done = 0

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def update(self, statuses: Sequence[RunStatus], est: Estimate) -> None:
        sweep = f"sweep {100 * est.completed / max(est.total, 1):.0f}%, {_left(est.overall_s)}"
        for s in statuses:
            before, now = self.seen.get(s.name), (s.state, s.epoch)
            self.seen[s.name] = now
            if before == now:
                continue
            if s.state in (FINISHED, FAILED):
                self.done += 1
                if before is None:  # done before this sweep looked: its header counts it
                    continue
                what = (
                    f"finished in {duration(s.elapsed_s)}"
                    if s.state == FINISHED
                    else f"FAILED: {s.error}"
                )
                self.say(f"[{self.done}/{est.total}] {s.name} {what} · {sweep}")
            elif s.state == RUNNING and s.epoch == 0:
                self.say(f"      {s.name} started ({s.holder})")
            elif s.state == RUNNING:
                run_left = _left(est.remaining_s.get(s.name))
                self.say(f"      {s.name} epoch {s.epoch}/{s.epochs} · run {run_left} · {sweep}")

    def close(self) -> None:
        pass


class LiveView:
    """rich progress bars: the sweep, then one per run in training."""

    def __init__(self, title: str, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[detail]}"),
            TextColumn("[cyan]{task.fields[left]}"),
            console=self.console,
            transient=False,
        )
        self.sweep = self.progress.add_task(f"[bold]{title}", total=1, detail="", left="")
        self.runs: dict[str, TaskID] = {}
        self.reported: set[str] = set()
        self.first = True
        self.progress.start()

    def say(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def update(self, statuses: Sequence[RunStatus], est: Estimate) -> None:
        p = self.progress
        p.update(
            self.sweep,
            total=max(est.total, 1),
            completed=est.completed,
            detail=f"{est.done}/{est.total} runs",
            left=_left(est.overall_s),
        )
        first, self.first = self.first, False
        for s in statuses:
            if s.state == RUNNING:
                if s.name not in self.runs:
                    self.runs[s.name] = p.add_task(f"  {s.name}", total=1, detail="", left="")
                p.update(
                    self.runs[s.name],
                    completed=s.fraction,
                    detail=f"epoch {s.epoch}/{s.epochs}" if s.epoch else "first epoch",
                    left=_left(est.remaining_s.get(s.name)),
                )
                continue
            if s.name in self.runs:
                p.remove_task(self.runs.pop(s.name))
            if s.state in (FINISHED, FAILED) and s.name not in self.reported:
                self.reported.add(s.name)
                if not first:  # runs done before this sweep started are in its header
                    mark = "[green]✓[/]" if s.state == FINISHED else "[red]✗[/]"
                    what = duration(s.elapsed_s) if s.state == FINISHED else f"failed: {s.error}"
                    self.console.print(f"{mark} {s.name}  {what}", highlight=False)

    def close(self) -> None:
        self.progress.stop()


class Monitor:
    """Scans the sweep directory every ``interval_s`` in a thread and updates ``view``."""

    def __init__(
        self, out: Path, configs: Sequence[RunConfig], since: float, view: View, interval_s=1.0
    ) -> None:
        self.out, self.configs, self.since, self.view = out, list(configs), since, view
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweep-monitor", daemon=True)

    def tick(self) -> list[RunStatus]:
        statuses = scan(self.out, self.configs, self.since)
        self.view.update(statuses, estimate(statuses))
        return statuses

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception as exc:  # a file caught mid-write must not end the display
                self.view.say(f"(progress display: {type(exc).__name__}: {exc})")

    def __enter__(self) -> Monitor:
        self.tick()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.tick()
        self.view.close()


def _left(seconds: float | None) -> str:
    return "time left ?" if seconds is None else f"{duration(seconds)} left"


def make_view(title: str, live: bool | None = None) -> View:
    """A live view on a terminal, lines elsewhere."""
    console = Console()
    if live is None:
        live = console.is_terminal
    return LiveView(title, console) if live else LineView(title)
