"""The Performance Law study on a finished grid sweep (issue 15): fits, held-out predictions,
the best configuration, under recscale's full ranking and the paper code's sampled-2499.

For each protocol and metric (HR@10, NDCG@10) it fits, on every run, the performance law
(layers, dim), the plain power law in parameters (``power_metric``) and the log-compute law,
and writes their R² side by side; it then holds out (a) the largest depth and (b) a random
quarter of the grid (seed 0), predicts them from the rest and records each error and whether
it fell in the prediction interval; finally it picks the best (layers, dim) of the grid from
the fitted surface and compares it with the measured best. Under ``sampled-2499`` every run's
selected checkpoint is re-evaluated (``recscale evaluate RUN --protocol sampled-2499``) and
the table is written beside the sweep's as ``results-sampled-2499.parquet``.

Ledger rows: ``plaw-r2-<protocol>-<metric>``, ``plaw-holdout-<kind>-<protocol>-<metric>``,
``plaw-best-<protocol>-<metric>`` under ``benchmarks/results/`` (with ``--tag T``, ``T-``
before the protocol: another grid's rows beside the first's).

    PYTHONPATH=src python benchmarks/plaw_study.py runs/plaw-ml1m   # RECSCALE_DATA_MIRROR set
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
import polars as pl

from recscale.scaling.api import fit_results
from recscale.scaling.fitting import fit_law
from recscale.scaling.laws import LAWS
from recscale.scaling.sweep import read_results
from recscale.train.runs import evaluate_run

RESULTS = Path(__file__).resolve().parent / "results"
LAWS_COMPARED = ("performance_law", "power_metric", "log_compute")
METRICS = ("hr@10", "ndcg@10")
PREDICTION_KEYS = ("run", "predicted", "lo", "hi", "measured", "rel_error", "inside")
PAPER_R2 = "REFERENCES.md §3.7: ML-1M panels, performance law 0.85-0.92, scaling law 0.17-0.76"


def sampled_table(sweep: Path, table: pl.DataFrame, protocol: str) -> Path:
    path = sweep / f"results-{protocol}.parquet"
    if path.is_file():
        return path
    rows = []
    for row in table.iter_rows(named=True):
        metrics = evaluate_run(sweep / "runs" / row["run"], protocol=protocol)["metrics"]
        rows.append({**row, **{m: metrics[m] for m in METRICS}})
    pl.DataFrame(rows).write_parquet(path)
    return path


def write_row(row: dict, args) -> None:
    row.update(
        command=f"python benchmarks/plaw_study.py {args.sweep}"
        + (f" --tag {args.tag}" if args.tag else ""),
        machine="2-core CPU (AMD EPYC, AVX2)",
        date=datetime.date.today().isoformat(),
    )
    (RESULTS / f"{row['name']}.json").write_text(json.dumps(row, indent=1) + "\n")
    print(row["name"], json.dumps(row["metrics"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--protocols", nargs="+", default=["full", "sampled-2499"])
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument(
        "--tag", default="", help="names this grid's rows plaw-<kind>-<tag>-... (e.g. len25)"
    )
    args = parser.parse_args()
    tag = f"{args.tag}-" if args.tag else ""
    table = read_results(args.sweep)
    deepest = table.filter(pl.col("layers") == table["layers"].max())["run"].to_list()
    quarter = sorted(
        np.random.default_rng(0).choice(table["run"].to_list(), len(table) // 4, replace=False)
    )
    for protocol in args.protocols:
        source = args.sweep if protocol == "full" else sampled_table(args.sweep, table, protocol)
        data = read_results(source)
        for metric in METRICS:
            r2 = {}
            for law in LAWS_COMPARED:
                fit = fit_results(source, law=law, metric=metric, n_boot=args.n_boot)
                r2[law] = round(fit["r2"], 4)
                if law == "performance_law":
                    pl_fit = fit
            write_row(
                {
                    "name": f"plaw-r2-{tag}{protocol}-{metric}",
                    "dataset": "ml-1m-sasrec",
                    "protocol": protocol,
                    "metrics": {f"r2_{k}": v for k, v in r2.items()},
                    "runs": len(data),
                    "performance_law_params": pl_fit["params"],
                    "performance_law_ci": pl_fit["ci"],
                    "published": PAPER_R2,
                },
                args,
            )
            for kind, held in (("deepest", deepest), ("quarter", quarter)):
                check = fit_results(
                    source, law="performance_law", metric=metric,
                    holdout=",".join(held), n_boot=args.n_boot,
                )  # fmt: skip
                rows = check["holdout"]
                write_row(
                    {
                        "name": f"plaw-holdout-{kind}-{tag}{protocol}-{metric}",
                        "dataset": "ml-1m-sasrec",
                        "protocol": protocol,
                        "metrics": {
                            "max_abs_rel_error": round(check["max_abs_rel_error"], 4),
                            "mean_abs_rel_error": round(
                                float(np.mean([abs(r["rel_error"]) for r in rows])), 4
                            ),
                            "inside_interval": sum(r["inside"] for r in rows),
                            "held_out": len(rows),
                            "fit_r2": round(check["r2"], 4),
                        },
                        "predictions": [{k: r[k] for k in PREDICTION_KEYS} for r in rows],
                    },
                    args,
                )
            law = LAWS.get("performance_law")
            fit = fit_law(law, data, metric=metric, n_boot=0)
            x = data.select(["layers", "dim"]).to_numpy().astype(float)
            predicted = law(x, fit.theta)
            pick, best = int(np.argmax(predicted)), int(np.argmax(data[metric].to_numpy()))
            runs = data["run"].to_list()
            write_row(
                {
                    "name": f"plaw-best-{tag}{protocol}-{metric}",
                    "dataset": "ml-1m-sasrec",
                    "protocol": protocol,
                    "metrics": {
                        "picked_measured": round(float(data[metric][pick]), 4),
                        "best_measured": round(float(data[metric][best]), 4),
                        "regret": round(float(data[metric][best] - data[metric][pick]), 4),
                    },
                    "picked": runs[pick],
                    "best": runs[best],
                },
                args,
            )


if __name__ == "__main__":
    main()
