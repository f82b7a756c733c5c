"""Data quality of every dataset held in the mirror: ApEn over the Performance Law code's
(m, r) grid, the LZ entropy rate, Shannon entropy and the compression ratio (issue 15).

ApEn is scored per user on the last ``--last-k`` items (the code's ``seql``) and averaged
over users, for m in {1, 2, 4, 8} and r in {-1, 0, 0.1, 1, 2} (REFERENCES.md §3.4; with
integer ids every r < 1 means exact-match templates). Writes one ledger row per dataset,
``benchmarks/results/plaw-quality-<dataset>.json``.

    RECSCALE_DATA_MIRROR=../shared/data PYTHONPATH=src python benchmarks/data_quality.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

from recscale.data import load_dataset
from recscale.data.quality import apen_batch, data_quality
from recscale.errors import RecscaleError

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = (
    "ml-100k", "ml-1m", "ml-1m-sasrec", "amazon-beauty", "amazon-beauty-bert4rec",
    "amazon-toys", "amazon-videogames", "lastfm",
)  # fmt: skip
M_GRID = (1, 2, 4, 8)
R_GRID = (-1.0, 0.0, 0.1, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--last-k", type=int, default=50)
    args = parser.parse_args()
    for name in args.datasets:
        start = time.perf_counter()
        try:
            ds = load_dataset(name)
        except RecscaleError as err:
            print(f"{name}: skipped ({err})")
            continue
        quality = data_quality(ds, m=2, r=0.2, last_k=args.last_k)
        grid = {
            f"apen_m{m}_r{r:g}": round(apen_batch(ds, m, r, args.last_k), 5)
            for m in M_GRID
            for r in R_GRID
        }
        row = {
            "name": f"plaw-quality-{name}",
            "dataset": name,
            "metrics": {
                "users": ds.num_users,
                "items": ds.num_items,
                "interactions": int(ds.num_interactions),
                "apen_m2_r0.2": round(quality["apen"], 5),
                "lz_entropy_rate": round(quality["lz_entropy_rate"], 4),
                "shannon_entropy_bits": round(quality["shannon_entropy_bits"], 4),
                "compression_ratio": round(quality["compression_ratio"], 4),
                **grid,
            },
            "last_k": args.last_k,
            "command": "python benchmarks/data_quality.py",
            "machine": "2-core CPU (AMD EPYC, AVX2)",
            "date": datetime.date.today().isoformat(),
            "wall_time_s": round(time.perf_counter() - start, 1),
        }
        (RESULTS / f"{row['name']}.json").write_text(json.dumps(row, indent=1) + "\n")
        print(name, {k: row["metrics"][k] for k in list(row["metrics"])[:7]})


if __name__ == "__main__":
    main()
