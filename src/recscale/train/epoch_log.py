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
