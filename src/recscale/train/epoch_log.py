"""Where each epoch's record goes: ``metrics.jsonl`` and, when asked, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recscale.errors import RecscaleError


def append_record(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def trim_records(path: Path, last_epoch: int) -> int:
    """Drop the records of epochs after ``last_epoch``; returns how many were dropped.

    A worker killed after logging an epoch but before checkpointing it leaves one record
    that the resumed run will write again; trimming to the checkpoint's epoch before resuming
    keeps every epoch in the log exactly once. A torn last line goes too.
    """
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            epoch = json.loads(line)["epoch"]
        except (json.JSONDecodeError, KeyError, TypeError):
            epoch = None
        if epoch is None or epoch > last_epoch:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        tmp.replace(path)
    return dropped


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
