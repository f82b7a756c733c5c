"""The Performance Law's data term across data sets (issue 15), on a finished plaw-datasets
sweep (configs/sweeps/plaw-datasets.yaml: one HSTU grid per data set).

Per metric it fits (a) the depth and width terms shared by all data sets with one free
constant per data set (``recscale.scaling.data_term``), with bootstrap intervals, and
correlates the constants with ln(tokens), ln(tokens/ApEn) and ln(tokens·ApEn);
(b) ``performance_law_data`` (D = kappa · tokens · ApEn') with each ApEn' transform, whose R²
is bounded by (a)'s; (c) the paper's way, the performance law per data set, with its D.
Ledger rows ``plaw-data-<metric>`` under ``benchmarks/results/``.

    PYTHONPATH=src python benchmarks/plaw_data.py runs/plaw-datasets
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
import polars as pl

from recscale.scaling.data_term import bootstrap_data_terms, correlation_interval, fit_data_terms
from recscale.scaling.fitting import fit_law
from recscale.scaling.laws import APEN_TRANSFORMS, performance_law_data
from recscale.scaling.sweep import read_results

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("hr@10", "ndcg@10")


def study(table: pl.DataFrame, metric: str, n_boot: int) -> dict:
    data = (
        table.group_by("dataset")
        .agg(pl.col("train_interactions").first(), pl.col("apen").first())
        .sort("dataset")
    )
    columns = [table[c].to_numpy() for c in ("layers", "dim", metric, "dataset")]
    fit = fit_data_terms(*columns)
    assert tuple(data["dataset"]) == fit.groups
    boot = bootstrap_data_terms(*columns, n_boot=n_boot)
    tokens, apen = data["train_interactions"].to_numpy().astype(float), data["apen"].to_numpy()
    lo, hi = np.quantile(boot, [0.025, 0.975], axis=0)
    against = {
        "ln tokens": np.log(tokens),
        "ln tokens/ApEn": np.log(tokens / apen),
        "ln tokens*ApEn": np.log(tokens * apen),
        "ApEn": apen,
    }
    correlations = {k: correlation_interval(fit.constants, boot, x) for k, x in against.items()}
    law_data = {
        t: fit_law(performance_law_data(t), table, metric=metric, n_boot=0).r2
        for t in APEN_TRANSFORMS
    }
    per_dataset = {}
    for name in fit.groups:
        sub = table.filter(pl.col("dataset") == name)
        f = fit_law("performance_law", sub, metric=metric, n_boot=50)
        per_dataset[name] = {"r2": f.r2, "D": f.params["D"], "D_ci": list(f.ci["D"])}
    paper_d = np.log([per_dataset[g]["D"] for g in fit.groups])
    return {
        "name": f"plaw-data-{metric}",
        "dataset": ",".join(fit.groups),
        "protocol": "full",
        "metrics": {
            "r2_shared_shape_free_constants": fit.r2,
            **{f"r2_performance_law_data_{t}": r2 for t, r2 in law_data.items()},
            **{f"pearson_constant_vs_{k}": c[0] for k, c in correlations.items()},
            "pearson_paper_lnD_vs_ln_tokens_x_apen": float(
                np.corrcoef(paper_d, against["ln tokens*ApEn"])[0, 1]
            ),
        },
        "correlation_ci": {k: [c[1], c[2]] for k, c in correlations.items()},
        "shared_shape": fit.w,
        "datasets": {
            g: {
                "train_interactions": int(tokens[i]),
                "apen": float(apen[i]),
                "constant": float(fit.constants[i]),
                "constant_ci": [float(lo[i]), float(hi[i])],
                "paper_fit": per_dataset[g],
            }
            for i, g in enumerate(fit.groups)
        },
        "runs": table.height,
        "n_boot": n_boot,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()
    table = read_results(args.sweep)
    for metric in METRICS:
        row = study(table, metric, args.n_boot)
        row.update(
            command=f"python benchmarks/plaw_data.py {args.sweep} --n-boot {args.n_boot}",
            machine="2-core CPU (AMD EPYC, AVX2)",
            date=datetime.date.today().isoformat(),
        )
        (RESULTS / f"{row['name']}.json").write_text(json.dumps(row, indent=1) + "\n")
        print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
