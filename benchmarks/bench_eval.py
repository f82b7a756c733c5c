"""Full-ranking evaluation of every test user: today's path against the ones before it.

Variants, all on the same freshly initialised model of the named run config (speed does not
depend on training), in one process, taking turns (``--repeats`` times each), so the ratios
hold on a loaded machine:

- ``row-order``: batches in row order, every query position computed (the reference);
- ``longest-first``: batches longest history first (little padding), every query computed;
- ``last-only``: longest first, and a backbone with ``supports_last_only`` computes only each
  row's last query in its final layer (``SequenceRecommender.encode_last``; today's default).

Every variant's metrics must agree (rel. 1e-5). Writes ``benchmarks/results/<name>.json``.
(``bench_eval_order.py`` before it timed the first two; its row ``eval-order-hstu-ml1m``.)

    PYTHONPATH=src python benchmarks/bench_eval.py --config configs/benchmarks/hstu-ml1m.yaml
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
import torch

from ledger_row import write_row  # same directory: `python benchmarks/...`
from recscale.eval.evaluator import evaluate
from recscale.train.config import load_run_config
from recscale.train.data import build_run_model, prepare_data

# name -> (batches longest first, final layer computes the last query only)
VARIANTS = {"row-order": (False, False), "longest-first": (True, False), "last-only": (True, True)}


def fresh_model(config: str | Path):
    """(config, freshly initialised model, split) of a run config, seeded by the config."""
    cfg = load_run_config(config)
    dataset, split = prepare_data(cfg.data, cfg.seed)
    torch.manual_seed(cfg.seed)
    cfg, model = build_run_model(cfg, dataset)
    return cfg, model, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/benchmarks/hstu-ml1m.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="eval-hstu-ml1m")
    parser.add_argument("--machine", default="2-core CPU (AMD EPYC, AVX2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg, model, split = fresh_model(args.config)
    last_only = type(model.encoder).supports_last_only
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    results = {}
    for _ in range(args.repeats):
        for name, (by_length, only_last) in VARIANTS.items():
            # An instance attribute shadows the class's: encode_last then gathers instead.
            model.encoder.supports_last_only = last_only and only_last
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
            times[name].append(time.perf_counter() - start)
            results[name] = sums.to_dict()
    model.encoder.supports_last_only = last_only
    reference = results["row-order"]
    same = all(
        np.isclose(got[k], reference[k], rtol=1e-5) for got in results.values() for k in reference
    )
    seconds = {name: float(np.median(t)) for name, t in times.items()}
    users = len(split.test)
    row = {
        "name": args.name,
        "dataset": cfg.data.name,
        "protocol": cfg.eval.protocol,
        "metrics": {
            **{f"eval_s_{name}": round(s, 3) for name, s in seconds.items()},
            "users": users,
            "users_per_s": round(users / seconds["last-only"], 1),
        },
        "speedup": round(seconds["row-order"] / seconds["last-only"], 3),
        "speedup_over_longest_first": round(seconds["longest-first"] / seconds["last-only"], 3),
        "backbone_supports_last_only": last_only,
        "metrics_equal": same,
        "threads": args.threads,
        "repeats": args.repeats,
        "command": f"python benchmarks/bench_eval.py --config {args.config} "
        f"--threads {args.threads} --repeats {args.repeats} --name {args.name}",
        "machine": args.machine,
        "date": datetime.date.today().isoformat(),
    }
    write_row(row)


if __name__ == "__main__":
    main()
