"""Time the main job (``recscale demo``) and write its ledger row, ``demo-wall-time``.

Runs the demo into a fresh directory in a child process, measures its wall time and peak
RSS (of the demo and its sweep workers), then reads each run's test numbers and the report's
held-out errors from what the demo wrote. Run it on an idle machine:

    RECSCALE_DATA_MIRROR=../shared/data python benchmarks/demo_row.py --out /tmp/demo-row
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ledger_row import write_row

# The issue's fresh-clone `make demo` (install included), and the demo on the idle machine
# before issue 13 (benchmarks/RESULTS.md, "The main job").
ISSUE_BASELINE_S = 14.5 * 60
BEFORE_ISSUE_IDLE_S = 570.0


def demo_row(out: Path, machine: str) -> dict:
    if out.exists():
        shutil.rmtree(out)
    recscale = Path(sys.executable).with_name("recscale")
    command = [str(recscale), "demo", "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    runs = {}
    for final in sorted((out / "runs").glob("*/final.json")):
        facts = json.loads(final.read_text())
        runs[facts["run"]] = {
            "test_loss": round(facts["test"]["loss"], 6),
            "hr@10": round(facts["test"]["hr@10"], 6),
            "ndcg@10": round(facts["test"]["ndcg@10"], 6),
            "wall_time_s": facts["facts"]["wall_time_s"],
        }
    heldout = {}
    for fit in json.loads((out / "report" / "fits.json").read_text()):
        for check in fit.get("holdout", []):
            heldout[f"heldout_error_{fit['law']}_{fit['metric']}"] = round(check["rel_error"], 4)
    return {
        "name": "demo-wall-time",
        "dataset": "ml-1m-sasrec",
        "protocol": "full",
        "metrics": {"wall_time_s": round(wall, 1), "peak_rss_mib": round(peak_mib, 1), **heldout},
        "reference": {
            "wall_time_s": BEFORE_ISSUE_IDLE_S,
            "what": f"the same command on the idle machine before issue 13 (RESULTS.md, "
            f"{BEFORE_ISSUE_IDLE_S:.0f} s); the issue's fresh-clone make demo took "
            f"{ISSUE_BASELINE_S / 60} min with install",
        },
        "speedup": round(BEFORE_ISSUE_IDLE_S / wall, 3),
        "fraction_of_issue_time": round(wall / ISSUE_BASELINE_S, 3),
        "runs": runs,
        "command": "python benchmarks/demo_row.py  # = recscale demo --out <fresh dir>, timed",
        "machine": machine,
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/demo-row"))
    parser.add_argument("--machine", default="2-core CPU (AMD EPYC, AVX2), idle")
    args = parser.parse_args()
    write_row(demo_row(args.out, args.machine))


if __name__ == "__main__":
    main()
