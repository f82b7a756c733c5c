"""The real console entry point: user errors are one line and exit code 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recscale.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_bad_config_key_names_the_key_and_what_is_allowed(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model: {backbone: transformerxl}\n")
    assert_user_error(cli("train", str(config), "--out", str(tmp_path / "run")), "backbone")


def test_unknown_override_key_is_named(tmp_path):
    proc = cli("model", "size", "hstu-xs", "--set", "depth=3")
    assert_user_error(proc, "depth", "allowed: backbone")


def test_missing_files_and_run_directories(tmp_path):
    assert_user_error(cli("train", str(tmp_path / "nope.yaml")), "nope.yaml")
    assert_user_error(cli("evaluate", str(tmp_path)), "not a run directory")
    assert_user_error(cli("report", str(tmp_path)), "not a sweep directory")


def test_malformed_data_line_names_file_and_line(tmp_path):
    data = tmp_path / "seqs.txt"
    data.write_text("1 2\n1 3\nthree four five\n")
    assert_user_error(cli("data", "stats", str(data), "--format", "sasrec"), "seqs.txt:3:")


def test_unknown_task_lists_the_known(tmp_path):
    assert_user_error(cli("evaluate", str(tmp_path), "--task", "nope"), "long-tail", "noise")


def test_tasks_lists_every_registered_task_as_json():
    proc = cli("tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    tasks = json.loads(proc.stdout)
    assert {"long-tail", "cold-start", "noise", "multi-step", "cross-domain"} <= set(tasks)
    assert tasks["noise"]["options"]["rates"] == [0.0, 0.1, 0.2, 0.3, 0.5]


@pytest.mark.parametrize(
    "command", [[], ["data"], ["model"], ["train"], ["evaluate"], ["sweep"], ["report"], ["tasks"]]
)
def test_every_command_has_help(command):
    proc = cli(*command, "--help")
    assert proc.returncode == 0 and "Usage" in proc.stdout
