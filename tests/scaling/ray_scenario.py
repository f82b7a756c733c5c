"""A Ray sweep on a two-node loopback cluster, with one worker killed mid-run.

Run by ``test_ray_executor.py`` inside fresh network and PID namespaces (``unshare --net
--pid``): the only interface is loopback, so Ray cannot use any other address, and
``ray stop`` (and the namespace's end) reach only this cluster's processes.

``python -m tests.scaling.ray_scenario SPEC OUT RESULT_JSON KILL_RUN``: starts a head node
and a worker node (one CPU each), runs ``recscale sweep SPEC --executor ray``, SIGKILLs the
Ray worker process training ``KILL_RUN`` once it has logged two epochs, waits for the sweep
and writes what happened to RESULT_JSON.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray(*args: str) -> str:
    tool = Path(sys.executable).parent / "ray"
    proc = subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(
            f"ray {' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc.stdout + proc.stderr


def wait_for_worker(out: Path, run: str, epochs: int, timeout_s: float = 420.0) -> int:
    """The pid of the process holding ``run`` once it has logged ``epochs`` epochs."""
    metrics = out / "runs" / run / "metrics.jsonl"
    owner = out / "locks" / f"{run}.owner.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if len(metrics.read_text().splitlines()) >= epochs:
                return int(json.loads(owner.read_text())["pid"])
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{run} did not log {epochs} epochs under a claim in {timeout_s} s")


def main(spec: str, out: str, result_path: str, kill_run: str) -> None:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are bounded
    port = free_port()
    address = f"127.0.0.1:{port}"
    result: dict = {"address": address}
    started = time.monotonic()
    try:
        ray(
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        )
        ray(
            "start",
            f"--address={address}",
            "--num-cpus=1",
            "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
        )
        result["cluster_up_s"] = round(time.monotonic() - started, 1)
        log = Path(out).parent / "driver.log"
        with open(log, "w") as sink:
            driver = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "recscale.cli",
                    "sweep",
                    spec,
                    "--out",
                    out,
                    "--executor",
                    "ray",
                    "--address",
                    address,
                    "--max-retries",
                    "2",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            pid = wait_for_worker(Path(out), kill_run, epochs=2)
            result["killed_cmdline"] = (
                Path(f"/proc/{pid}/cmdline")
                .read_bytes()
                .decode(errors="replace")
                .replace("\0", " ")
                .strip()
            )
            os.kill(pid, signal.SIGKILL)
            result["killed_pid"] = pid
            result["killed_after_epochs"] = len(
                (Path(out) / "runs" / kill_run / "metrics.jsonl").read_text().splitlines()
            )
            result["driver_rc"] = driver.wait(timeout=300)
        result["driver_log"] = log.read_text()
    finally:
        try:
            ray("stop", "--force")
        except Exception as exc:  # the namespace's end stops whatever is left
            result["stop_error"] = str(exc)
        result["total_s"] = round(time.monotonic() - started, 1)
        Path(result_path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:5])
