"""Issue 19's ledger rows from finished sweeps: item text against id-only items, cold-start
items, and semantic-ID retrieval against id retrieval across sizes.

- ``--text`` (``configs/sweeps/text-ml1m.yaml``, ``cold-items-ml1m.yaml``): one row per run,
  ``ml-1m-text-<run>``;
  for the runs on the ``cold_items`` split also ``ml-1m-cold-items-<run>`` with the
  ``cold-items`` task's cold and warm metrics (``recscale evaluate RUN --task cold-items``).
- ``--semantic`` (``configs/sweeps/semantic-ids-ml1m.yaml``): ``ml-1m-semantic-ids-<run>``
  with the code usage and, from the ``--id-sweep`` directories (``plaw-ml1m-llama.yaml``,
  ``id-llama-ml1m.yaml``), the 1-layer id-retrieval run of the same width beside it;
  ``ml-1m-semantic-ids-law-<metric>``: the log-compute law fitted over the sizes (R²,
  parameters).

    PYTHONPATH=src python benchmarks/text_study.py --text runs/text-ml1m runs/cold-items-ml1m \\
        --semantic runs/semantic-ids-ml1m --id-sweep runs/plaw-ml1m-llama runs/id-llama-ml1m
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ledger_row import row_from_runs, write_row
from recscale.scaling.api import fit_results
from recscale.train.runs import run_task

TEXT_COMMAND = "recscale sweep configs/sweeps/text-ml1m.yaml --out runs/text-ml1m"
SEMANTIC_COMMAND = (
    "recscale sweep configs/sweeps/semantic-ids-ml1m.yaml --out runs/semantic-ids-ml1m"
)
SHOWN = ("hr@10", "ndcg@10")


def finished(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in (sweep / "runs").glob("*/final.json"))


def sweep_command(sweep: Path, default: str) -> str:
    """The command that ran the sweep, as the sweep recorded it."""
    path = sweep / "command.txt"
    return path.read_text().strip() if path.is_file() else default


def text_rows(sweep: Path) -> None:
    command = sweep_command(sweep, TEXT_COMMAND)
    for run in finished(sweep):
        split = json.loads((run / "dataset.json").read_text()).get("split")
        write_row(row_from_runs([run], f"ml-1m-text-{run.name}", command, note=split))
        if not run.name.startswith("cold-"):
            continue
        result = run_task(run, "cold-items")["result"]
        metrics = {
            f"{part}_{m}": round(result[part][m], 4) for part in ("cold", "warm") for m in SHOWN
        }
        row = {
            "name": f"ml-1m-cold-items-{run.name}",
            "dataset": "ml-1m-sasrec",
            "protocol": "full (cold_items split, cold-items task)",
            "metrics": metrics,
            "cold_users": result["cold"]["users"],
            "cold_items": result["cold"]["items"],
            "warm_users": result["warm"]["users"],
            "command": f"{command}; recscale evaluate {run} --task cold-items",
        }
        write_row(row)


def semantic_rows(sweep: Path, id_sweeps: list[Path]) -> None:
    for run in finished(sweep):
        command = sweep_command(sweep, SEMANTIC_COMMAND)
        row = row_from_runs([run], f"ml-1m-semantic-ids-{run.name}", command)
        usage = json.loads((run / "semantic_ids.json").read_text())
        row["codes"] = {k: usage[k] for k in ("level_sizes", "collision_share", "perplexity")}
        for id_sweep in id_sweeps:
            baseline = id_sweep / "runs" / f"layers1-{run.name}"
            if (baseline / "final.json").is_file():
                final = json.loads((baseline / "final.json").read_text())
                row["id_retrieval"] = {
                    "run": str(baseline.relative_to(id_sweep.parent)),
                    "non_embedding_params": final["facts"]["non_embedding_params"],
                    **{m: round(final["test"][m], 4) for m in SHOWN},
                }
        write_row(row)
    if len(finished(sweep)) < 3:
        return
    for metric in SHOWN:
        fit = fit_results(sweep, law="log_compute", metric=metric, n_boot=100)
        write_row(
            {
                "name": f"ml-1m-semantic-ids-law-{metric}",
                "dataset": "ml-1m-sasrec",
                "protocol": "full",
                "metrics": {"r2": round(fit["r2"], 4)},
                "params": fit["params"],
                "ci": fit["ci"],
                "runs": len(finished(sweep)),
                "command": "recscale fit runs/semantic-ids-ml1m --law log_compute "
                f"--metric {metric}",
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, nargs="*", default=[])
    parser.add_argument("--semantic", type=Path)
    parser.add_argument("--id-sweep", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    for sweep in args.text:
        text_rows(sweep)
    if args.semantic:
        semantic_rows(args.semantic, args.id_sweep)


if __name__ == "__main__":
    main()
