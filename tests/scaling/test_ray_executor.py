"""``--executor ray`` on a real two-node cluster: a killed worker's run is retried from its
checkpoint, every run is trained once, and the table equals the local executor's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recscale.errors import RecscaleError
from recscale.scaling.executors import EXECUTORS, ExecutorOptions
from recscale.scaling.sweep import run_sweep
from tests.scaling.sweeps import claims, comparable, epochs_logged, one_thread, tiny_sweep

REPO = Path(__file__).resolve().parents[2]
SIZES = [(2, 16), (1, 8), (1, 16), (2, 8)]
KILL = "layers2-dim16"  # first in the spec, so it starts at once; the longest


def loopback_namespaces() -> bool:
    """Can this user make network + PID namespaces with only loopback (root, unshare, ip)?"""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "ip", "link", "set", "lo", "up"],
        capture_output=True,
    )
    return probe.returncode == 0


def test_executor_options_are_checked_by_the_executor_that_uses_them():
    assert EXECUTORS.names() == ["local", "ray"]
    with pytest.raises(RecscaleError, match="--address names a Ray cluster"):
        EXECUTORS.get("local")(ExecutorOptions(address="127.0.0.1:6379"))
    with pytest.raises(RecscaleError, match="--jobs is for --executor local"):
        EXECUTORS.get("ray")(ExecutorOptions(jobs=2))
    with pytest.raises(RecscaleError, match="unknown executor 'slurm'; known: local, ray"):
        EXECUTORS.get("slurm")


@pytest.mark.slow
def test_ray_retries_a_killed_worker_from_its_checkpoint_and_matches_local(tmp_path: Path):
    pytest.importorskip("ray")
    if not loopback_namespaces():
        pytest.skip("needs `unshare --net --pid` (root) to keep the Ray cluster on loopback")
    spec = tiny_sweep(tmp_path / "spec", epochs=6, users=200, sizes=SIZES)
    out, result_path = tmp_path / "ray" / "sweep", tmp_path / "ray" / "result.json"
    out.parent.mkdir()
    shell = 'ip link set lo up && exec "$0" -m tests.scaling.ray_scenario "$@"'
    cmd = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", shell]
    cmd += [sys.executable, str(spec), str(out), str(result_path), KILL]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with one_thread():  # the reference, while the cluster starts
        local = run_sweep(spec, tmp_path / "local", progress=False)
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output[-3000:]
    result = json.loads(result_path.read_text())
    print(json.dumps({k: v for k, v in result.items() if k != "driver_log"}, indent=1))
    print(result["driver_log"])
    assert result["driver_rc"] == 0, result["driver_log"]
    assert "ray::" in result["killed_cmdline"]  # a Ray worker process, not the driver
    assert 2 <= result["killed_after_epochs"] < 6

    for n, d in SIZES:
        name = f"layers{n}-dim{d}"
        assert epochs_logged(out, name) == [1, 2, 3, 4, 5, 6], name
    killed, retried = claims(out, KILL)
    assert killed["pid"] == result["killed_pid"]
    assert retried["took_over"] == f"pid {killed['pid']} on {killed['host']}"
    assert all(len(claims(out, f"layers{n}-dim{d}")) == 1 for n, d in SIZES[1:])
    assert local.finished == 4 and not local.failed
    assert comparable(out).equals(comparable(tmp_path / "local"))
