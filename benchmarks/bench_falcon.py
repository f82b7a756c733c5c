"""M-FALCON vs one pass per candidate vs one joint pass: m candidates for each history.

For a target-aware HSTU ranker (freshly initialised: speed does not depend on training) and
``--users`` histories of ``--history`` items, scores ``m`` candidates per history three ways,
taking turns in one process (``--repeats`` each) so the ratios hold on a loaded machine:

- ``one_by_one``: one pass over [history; candidate] per candidate (the reference);
- ``joint``: one pass over [history; all m candidates] under the ranking mask;
- ``falcon``: the history once, its keys and values cached, then ceil(m / b) micro-batches.

Also checks that the three give the same scores. Writes ``benchmarks/results/<name>-<m>.json``.

    PYTHONPATH=src python benchmarks/bench_falcon.py --candidates 100 1000
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch

from recscale.models import ModelConfig, RankingInputs, build_ranker
from recscale.models.falcon import score_candidates, score_one_by_one

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--history", type=int, default=200)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--micro-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="falcon-hstu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig(
        backbone="hstu", dim=args.dim, layers=args.layers, heads=2, max_len=args.history + 1
    )
    ranker = build_ranker("target_aware", cfg, 3416).eval()
    g = torch.Generator().manual_seed(1)
    items = torch.randint(1, 3417, (args.users, args.history), generator=g)
    lengths = torch.full((args.users,), args.history)
    labels = torch.ones(args.users, args.history)
    for m in args.candidates:
        candidates = torch.randint(1, 3417, (args.users, m), generator=g)
        prefix = lengths[:, None].expand(args.users, m)
        ways = {
            "one_by_one": lambda c=candidates: score_one_by_one(ranker, items, lengths, labels, c),
            "joint": lambda c=candidates, p=prefix: torch.no_grad()(ranker)(
                RankingInputs(items, lengths, labels, c, p)
            )[1],
            "falcon": lambda c=candidates: score_candidates(
                ranker, items, lengths, labels, c, args.micro_batch
            ),
        }
        times: dict[str, list[float]] = {k: [] for k in ways}
        scores: dict[str, torch.Tensor] = {}
        for _ in range(args.repeats):
            for way, fn in ways.items():
                seconds, scores[way] = timed(fn)
                times[way].append(seconds)
        ref = scores["one_by_one"]
        equal = all(torch.allclose(s, ref, rtol=1e-4, atol=1e-5) for s in scores.values())
        median = {k: float(np.median(v)) for k, v in times.items()}
        row = {
            "name": f"{args.name}-{m}",
            "metrics": {f"s_{k}": round(v, 4) for k, v in median.items()},
            "speedup": round(median["one_by_one"] / median["falcon"], 2),
            "speedup_over_joint": round(median["joint"] / median["falcon"], 2),
            "candidates": m,
            "users": args.users,
            "history": args.history,
            "micro_batch": args.micro_batch,
            "model": f"hstu d={args.dim} {args.layers} blocks",
            "scores_equal": equal,
            "threads": args.threads,
            "repeats": args.repeats,
            "command": f"python benchmarks/bench_falcon.py --candidates {m} --users {args.users} "
            f"--history {args.history} --micro-batch {args.micro_batch} --threads {args.threads}",
            "machine": "2-core CPU (AMD EPYC, AVX2)",
            "date": datetime.date.today().isoformat(),
        }
        (RESULTS / f"{row['name']}.json").write_text(json.dumps(row, indent=1) + "\n")
        print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
