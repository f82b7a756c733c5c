"""Write a results-ledger row (``benchmarks/results/<name>.json``) from finished run(s).

With several run directories (seeds), the metrics are their mean and ``std`` their sample
standard deviation. The numbers are read from each run's ``final.json`` (valid-selected
checkpoint, test split), never typed in; with ``--protocol`` the test numbers are those of
that checkpoint re-evaluated under another protocol (``recscale evaluate``), the valid ones
stay the training protocol's.

    python benchmarks/ledger_row.py runs/bench/sasrec-plus-ml1m --name ml-1m-sasrec-plus \\
        --command "recscale train configs/benchmarks/sasrec-plus-ml1m.yaml ..." \\
        --published hr@10=0.3152 --note "stopped at epoch 60 of 100"
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SHOWN = ("hr@10", "ndcg@10", "hr@1", "mrr", "auc", "gauc", "logloss")


MACHINE = "2-core CPU (AMD EPYC, AVX2), 1 thread"


def row_from_runs(
    runs: list[Path],
    name: str,
    command: str,
    published: dict[str, float] | None = None,
    note: str | None = None,
    machine: str = MACHINE,
    protocol: str | None = None,
) -> dict:
    """The ledger row of one or more finished runs (seeds: mean, and std over them)."""
    finals = [json.loads((run / "final.json").read_text()) for run in runs]
    trained_under = finals[0]["protocol"]
    if protocol is not None:
        from recscale.train.runs import evaluate_run

        for run, final in zip(runs, finals, strict=True):
            final["test"] = evaluate_run(run, protocol=protocol, split="test")["metrics"]
            final["protocol"] = protocol
    dataset = json.loads((runs[0] / "dataset.json").read_text())["name"]
    metrics = {k: [f["test"][k] for f in finals] for k in SHOWN if k in finals[0]["test"]}
    means = {k: float(np.mean(v)) for k, v in metrics.items()}
    published = published or {}
    valid = finals[0].get("valid")
    row = {
        "name": name,
        "dataset": dataset,
        "protocol": finals[0]["protocol"],
        "valid_protocol": trained_under if protocol is not None else None,
        "selection": finals[0]["selection"],
        "metrics": {k: round(v, 4) for k, v in means.items()},
        "valid": {k: round(float(np.mean([f["valid"][k] for f in finals])), 4) for k in metrics}
        if valid
        else None,
        "published": published or None,
        "gap": {k: round(means[k] / v - 1, 4) for k, v in published.items() if k in means} or None,
        "seeds": len(finals),
        "seed_values": [f["seed"] for f in finals],
        "std": {k: round(float(np.std(v, ddof=1)), 4) for k, v in metrics.items()}
        if len(finals) > 1
        else None,
        "non_embedding_params": finals[0]["facts"]["non_embedding_params"],
        "best_epoch": [f["best_epoch"] for f in finals],
        "epochs": [f["facts"]["epochs"] for f in finals],
        "stop_reason": [f["stop_reason"] for f in finals],
        "status": note,
        "command": command,
        "machine": machine,
        "date": datetime.date.today().isoformat(),
        "wall_time_s": round(sum(f["facts"]["wall_time_s"] for f in finals), 1),
    }
    return {k: v for k, v in row.items() if v is not None}


def write_row(row: dict, out: Path = RESULTS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{row['name']}.json").write_text(json.dumps(row, indent=1) + "\n")
    print(json.dumps(row, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", required=True, help="the command that made the run(s)")
    parser.add_argument("--published", nargs="*", default=[], metavar="METRIC=VALUE")
    parser.add_argument("--note", help="status: converged, capped, what differs")
    parser.add_argument("--machine", default=MACHINE)
    parser.add_argument("--protocol", help="re-evaluate the best checkpoints under this one")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    published = {k: float(v) for k, v in (p.split("=", 1) for p in args.published)}
    row = row_from_runs(
        args.runs, args.name, args.command, published, args.note, args.machine, args.protocol
    )
    write_row(row, args.out)


if __name__ == "__main__":
    main()
