"""Print the reproduction table of RESULTS.md from ledger rows (``benchmarks/results/``).

    python benchmarks/results_table.py amazon-beauty-sasrec-ss=SASRec+SS amazon-toys-hstu=HSTU

Each argument is ``<row name>[=<model label>]``; the numbers come from the rows, never typed in.
"""

from __future__ import annotations

import argparse
import json

from ledger_row import RESULTS

METRICS = ("hr@10", "ndcg@10")


def _cell(row: dict, key: str, metric: str, spec: str) -> str:
    """``row[key][metric]`` formatted with ``spec``; "–" where the row has none."""
    value = (row.get(key) or {}).get(metric)
    return "–" if value is None else format(value, spec)


def _measured(row: dict, metric: str) -> str:
    std = _cell(row, "std", metric, ".4f")
    mean = _cell(row, "metrics", metric, ".4f")
    return mean if std == "–" else f"{mean} ± {std}"


def table_line(name: str, label: str) -> str:
    row = json.loads((RESULTS / f"{name}.json").read_text())
    cells = [
        row["dataset"],
        f"{label} (`{name}`)",
        row["protocol"],
        " / ".join(_cell(row, "published", m, ".4f") for m in METRICS),
        " / ".join(_measured(row, m) for m in METRICS),
        " / ".join(_cell(row, "gap", m, "+.1%") for m in METRICS),
        str(row.get("seeds", 1)),
        f"{row['wall_time_s']:.0f}" if "wall_time_s" in row else "–",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", metavar="NAME[=LABEL]")
    args = parser.parse_args()
    print(
        "| dataset | model (row) | protocol | published R@10 / N@10 | measured R@10 / N@10 "
        "| gap | seeds | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arg in args.rows:
        name, _, label = arg.partition("=")
        print(table_line(name, label or name))


if __name__ == "__main__":
    main()
