"""Where each epoch's record goes: ``metrics.jsonl`` and, when asked, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recscale.errors import RecscaleError


def append_record(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def tensorboard_writer(enabled: bool, run_dir: Path):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RecscaleError(
            "train.tensorboard=true needs the tensorboard package: pip install tensorboard"
        ) from None
    return SummaryWriter(str(run_dir / "tensorboard"))


def log_tensorboard(writer, record: dict[str, Any]) -> None:
    step = record["tokens"]
    writer.add_scalar("train/loss", record["train_loss"], step)
    for part in ("valid", "test"):
        for key, value in record.get(part, {}).items():
            writer.add_scalar(f"{part}/{key}", value, step)


def trim_metrics(path: Path, epochs: int) -> None:
    """Keep the records of the first ``epochs`` epochs (a resume redoes the later ones) and
    drop a line a kill tore in half."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("epoch", 0) <= epochs:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept))
