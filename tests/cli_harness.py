"""Run the real ``recscale`` entry point in this process and check what a user sees.

``recscale.cli.main`` is what the console script calls; running it here (not in a
subprocess) keeps each case to milliseconds. ``tests/test_cli.py`` holds the same
contract through a real subprocess.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from recscale.cli import main


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


@contextmanager
def working_directory(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_cli(args: list[str], cwd: Path) -> Outcome:
    """``recscale ARGS`` in ``cwd``: exit code, stdout, stderr (an exception escaping main
    is a crash and propagates, with its traceback, into the test)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with working_directory(cwd), redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Outcome(code, out.getvalue(), err.getvalue())


def assert_one_line_error(outcome: Outcome, *fragments: str) -> str:
    """Exit code 2 and exactly one ``error:`` line on stderr holding every fragment."""
    assert "Traceback" not in outcome.stderr, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert outcome.code == 2, f"exit {outcome.code}; stderr: {outcome.stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]
