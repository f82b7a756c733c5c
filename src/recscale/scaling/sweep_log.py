"""What a sweep says while it runs: each warning once per sweep, not once per run.

Six runs of one model family raise the same warning six times (HSTU without timestamps,
a dataset's unverified counts). :class:`OnceLog` says a message the first time and counts
the rest, whichever process raised it: local worker processes send their records through a
queue (:func:`worker_logging`), Ray tasks return theirs (:func:`collect_records`) and the
driver replays them. Python warnings go through the same path (``logging.captureWarnings``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The sweep's own news (a run taken over from a dead worker) is INFO and is always said.
SWEEP_LOGGER = "recscale.scaling"


class OnceLog(logging.Handler):
    """Says each warning (by level and text) once; ``repeats`` counts how often it came."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.say = say
        self.counts: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno < logging.WARNING:
            if record.name.startswith(SWEEP_LOGGER):
                self.say(message)
            return
        key = (record.levelname.lower(), message)
        self.counts[key] += 1
        if self.counts[key] == 1:
            self.say(f"{key[0]}: {message}")

    def repeats(self) -> list[tuple[str, int]]:
        """``[("warning: text", times)]`` in the order first said."""
        return [(f"{level}: {text}", n) for (level, text), n in self.counts.items()]


@contextmanager
def sweep_logging(say: Callable[[str], None]) -> Iterator[OnceLog]:
    """Route every warning of this process (and of replayed worker records) through one
    :class:`OnceLog` for the duration of a sweep."""
    handler = OnceLog(say)
    with worker_logging(handler):
        yield handler


@contextmanager
def worker_logging(handler: logging.Handler) -> Iterator[logging.Handler]:
    """Install ``handler`` on the root logger, with warnings and the sweep's INFO news."""
    root, sweep = logging.getLogger(), logging.getLogger(SWEEP_LOGGER)
    level = sweep.level
    root.addHandler(handler)
    sweep.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield handler
    finally:
        logging.captureWarnings(False)
        sweep.setLevel(level)
        root.removeHandler(handler)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


@contextmanager
def collect_records() -> Iterator[list[tuple[str, int, str]]]:
    """Collect this process's log records as ``(logger, level, message)`` to send back."""
    handler = _Collect()
    with worker_logging(handler):
        yield handler.records


def replay(records: list[tuple[str, int, str]]) -> None:
    """Log records that :func:`collect_records` gathered in another process, here."""
    for name, level, message in records:
        logging.getLogger(name).log(level, "%s", message)
