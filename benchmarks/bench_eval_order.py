"""Full-ranking evaluation of every test user: batches in row order vs longest first.

Both orders run in one process, taking turns (``--repeats`` times each), on the same model,
so the ratio holds on a loaded machine. The model is the named run config's, freshly
initialised (speed does not depend on training). Writes ``benchmarks/results/<name>.json``.

    PYTHONPATH=src python benchmarks/bench_eval_order.py --config configs/benchmarks/hstu-ml1m.yaml
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch

from recscale.eval.evaluator import evaluate
from recscale.train.config import load_run_config
from recscale.train.data import build_run_model, prepare_data

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/benchmarks/hstu-ml1m.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="eval-order-hstu-ml1m")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_run_config(args.config)
    dataset, split = prepare_data(cfg.data, cfg.seed)
    torch.manual_seed(cfg.seed)
    cfg, model = build_run_model(cfg, dataset)
    times: dict[bool, list[float]] = {False: [], True: []}
    results = {}
    for _ in range(args.repeats):
        for by_length in (False, True):
            start = time.perf_counter()
            sums = evaluate(
                model,
                split.test,
                cfg.eval.protocol,
                max_len=cfg.model.max_len,
                batch_size=cfg.eval.batch_size,
                ks=cfg.eval.ks,
                by_length=by_length,
            )
            times[by_length].append(time.perf_counter() - start)
            results[by_length] = sums.to_dict()
    same = all(np.isclose(results[True][k], results[False][k], rtol=1e-6) for k in results[False])
    row_s, length_s = float(np.median(times[False])), float(np.median(times[True]))
    row = {
        "name": args.name,
        "dataset": cfg.data.name,
        "protocol": cfg.eval.protocol,
        "metrics": {
            "eval_s_row_order": round(row_s, 3),
            "eval_s_longest_first": round(length_s, 3),
            "users": len(split.test),
            "users_per_s_longest_first": round(len(split.test) / length_s, 1),
        },
        "speedup": round(row_s / length_s, 3),
        "metrics_equal": same,
        "threads": args.threads,
        "repeats": args.repeats,
        "command": f"python benchmarks/bench_eval_order.py --config {args.config} "
        f"--threads {args.threads} --repeats {args.repeats}",
        "machine": "2-core CPU (AMD EPYC, AVX2)",
        "date": datetime.date.today().isoformat(),
    }
    (RESULTS / f"{args.name}.json").write_text(json.dumps(row, indent=1) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
