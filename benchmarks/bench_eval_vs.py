"""Full-ranking evaluation of every test user: this checkout against another recscale source.

Each round starts one process per side, taking turns (``--rounds`` times), on the same model:
the named run config's freshly initialised model (speed does not depend on training, except
through exp's slow path for very spread scores) or a trained run's best checkpoint
(``--run``). The reference side is another checkout's ``src`` (``--reference``), e.g. the
commit before a change::

    git worktree add /tmp/before <commit>
    PYTHONPATH=src python benchmarks/bench_eval_vs.py --reference /tmp/before/src \\
        --config configs/benchmarks/hstu-ml1m.yaml --name eval-vs-before-hstu-ml1m

Writes ``benchmarks/results/<name>.json`` with both medians, the paired speed-up and whether
the metrics agree (rel. 1e-5).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ledger_row import write_row  # same directory: `python benchmarks/...`

SRC = Path(__file__).resolve().parent.parent / "src"


def time_once(config: str, run: str | None, threads: int, repeats: int) -> dict:
    """In this process: evaluate ``repeats`` times; median seconds and the metrics."""
    import torch

    from recscale.eval.evaluator import evaluate

    torch.set_num_threads(threads)
    if run:
        from recscale.train.runs import load_run

        loaded = load_run(run, device="cpu")
        cfg, model, split = loaded.cfg, loaded.model, loaded.split
    else:
        from bench_eval import fresh_model  # imports whichever recscale is on the path

        cfg, model, split = fresh_model(config)
    times, metrics = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        sums = evaluate(
            model,
            split.test,
            cfg.eval.protocol,
            max_len=cfg.model.max_len,
            batch_size=cfg.eval.batch_size,
            ks=cfg.eval.ks,
        )
        times.append(time.perf_counter() - start)
        metrics = sums.to_dict()
    info = {"dataset": cfg.data.name, "protocol": cfg.eval.protocol, "users": len(split.test)}
    return {"seconds": float(np.median(times)), "metrics": metrics, **info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="the other checkout's src")
    parser.add_argument("--config", default="configs/benchmarks/hstu-ml1m.yaml")
    parser.add_argument("--run", default=None, help="a trained run directory instead")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--name", required=True)
    parser.add_argument("--machine", default="2-core CPU (AMD EPYC, AVX2)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_once(args.config, args.run, args.threads, args.repeats)))
        return
    child = [sys.executable, __file__, "--child", "--reference", str(args.reference)]
    child += ["--config", args.config, "--threads", str(args.threads)]
    child += ["--repeats", str(args.repeats), "--name", args.name]
    child += ["--run", args.run] if args.run else []
    sides = {"new": SRC, "reference": args.reference.resolve()}
    found: dict[str, list[dict]] = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, src in sides.items():
            env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run(child, env=env, check=True, capture_output=True, text=True)
            found[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    new_s = float(np.median([r["seconds"] for r in found["new"]]))
    ref_s = float(np.median([r["seconds"] for r in found["reference"]]))
    pairs = zip(found["reference"], found["new"], strict=True)
    ratios = [ref["seconds"] / new["seconds"] for ref, new in pairs]
    new_m, ref_m = found["new"][-1]["metrics"], found["reference"][-1]["metrics"]
    same = all(np.isclose(new_m[k], ref_m[k], rtol=1e-5) for k in ref_m)
    first = found["new"][0]
    command = f"python benchmarks/bench_eval_vs.py --reference {args.reference}"
    command += f" --run {args.run}" if args.run else f" --config {args.config}"
    command += f" --threads {args.threads} --repeats {args.repeats} --rounds {args.rounds}"
    row = {
        "name": args.name,
        "dataset": first["dataset"],
        "protocol": first["protocol"],
        "metrics": {
            "eval_s": round(new_s, 3),
            "eval_s_reference": round(ref_s, 3),
            "users": first["users"],
            "users_per_s": round(first["users"] / new_s, 1),
        },
        "speedup": round(ref_s / new_s, 3),
        "speedup_per_round": [round(r, 3) for r in ratios],
        "metrics_equal": same,
        "model": "trained run " + args.run if args.run else "freshly initialised " + args.config,
        "reference": str(args.reference),
        "threads": args.threads,
        "command": command + f" --name {args.name}",
        "machine": args.machine,
        "date": datetime.date.today().isoformat(),
    }
    write_row(row)


if __name__ == "__main__":
    main()
