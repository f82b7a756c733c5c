"""The full-ranking scan (ranks + full-softmax loss, history excluded) at several item-chunk
widths, on random query and item vectors, each width taking turns in one process.

    PYTHONPATH=src python benchmarks/bench_eval_chunk.py --threads 1

Writes ``benchmarks/results/eval-scan-chunk.json``: median ms per [batch x items] scan for each
catalogue size and width, and the speed-up of the default width over 32,768 (the previous one).
"""

from __future__ import annotations

import argparse
import datetime
import time

import numpy as np
import torch

from ledger_row import write_row  # same directory: `python benchmarks/...`
from recscale.eval.evaluator import DEFAULT_ITEM_CHUNK, _ItemTable

WIDTHS = (32_768, 4096, 2048, 1024, 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--items", type=int, nargs="+", default=[3417, 12_102, 100_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--machine", default="2-core CPU (AMD EPYC, AVX2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    b, d = args.batch, args.dim
    metrics, speedup = {}, {}
    for n in args.items:
        g = torch.Generator().manual_seed(0)
        vectors = torch.randn(n, d, generator=g) * 0.3
        query = torch.randn(b, d, generator=g) * 0.3
        targets = torch.randint(1, n, (b,), generator=g)
        excluded = torch.randint(0, n, (b, 40), generator=g)
        tables = {w: _ItemTable(vectors, w, b) for w in WIDTHS}
        times: dict[int, list[float]] = {w: [] for w in WIDTHS}
        ranks = {}
        for _ in range(args.repeats):
            for w, table in tables.items():
                start = time.perf_counter()
                ranks[w], _ = table.scan(query, targets, excluded, 1.0, rank=True, loss=True)
                times[w].append(time.perf_counter() - start)
        assert all(torch.equal(ranks[w], ranks[WIDTHS[0]]) for w in WIDTHS), "ranks differ"
        for w in WIDTHS:
            metrics[f"ms_items{n}_chunk{w}"] = round(1e3 * float(np.median(times[w])), 2)
        default = metrics[f"ms_items{n}_chunk{DEFAULT_ITEM_CHUNK}"]
        speedup[f"items{n}"] = round(metrics[f"ms_items{n}_chunk32768"] / default, 3)
    row = {
        "name": "eval-scan-chunk",
        "metrics": metrics,
        "speedup": speedup,
        "default_chunk": DEFAULT_ITEM_CHUNK,
        "batch": b,
        "dim": d,
        "threads": args.threads,
        "command": f"python benchmarks/bench_eval_chunk.py --threads {args.threads}",
        "machine": args.machine,
        "date": datetime.date.today().isoformat(),
    }
    write_row(row)


if __name__ == "__main__":
    main()
