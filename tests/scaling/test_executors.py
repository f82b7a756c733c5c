"""Local sweep workers do not outlive the sweep process that started them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from recscale.scaling.executors import die_with_parent

    def child(parent):
        die_with_parent(parent)
        time.sleep(120)

    if __name__ == "__main__":
        worker = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(),))
        worker.start()
        with open(sys.argv[2], "w") as fh:
            fh.write(str(worker.pid))
        time.sleep(float(sys.argv[1]))  # the worker is up and asleep by now
        os._exit(0)  # gone without cleanup, as under kill -9
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its reaping is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_its_sweep_process(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    pid_file = tmp_path / "worker.pid"
    # No pipes: a surviving worker would hold them open and hang the call.
    subprocess.run(
        [sys.executable, str(script), "3", str(pid_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
        check=True,
    )
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not _alive(pid), "the worker outlived its parent"
    finally:
        if _alive(pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)
