"""The facts recorded with every run: scaling quantities, hardware, memory, the data."""

from __future__ import annotations

import platform
import sys
from typing import Any

import numpy as np
import torch

from recscale.data.dataset import SequenceDataset
from recscale.data.splits import Split
from recscale.data.stats import dataset_statistics
from recscale.models import ModelConfig, SequenceRecommender
from recscale.models.size import count_parameters, flops_per_token
from recscale.train.distributed import Dist
from recscale.train.record import ScalingFacts


def train_positions(train_set: SequenceDataset, max_len: int) -> np.ndarray:
    """Target positions each training sequence contributes per epoch (its window)."""
    return np.minimum(train_set.lengths - 1, max_len).clip(min=0)


def scaling_facts(
    model: SequenceRecommender,
    model_cfg: ModelConfig,
    train_set: SequenceDataset,
    *,
    tokens: int,
    epochs: int,
    steps: int,
    wall_time_s: float,
    data_fraction: float,
    device: torch.device,
    dist: Dist,
) -> ScalingFacts:
    """The numbers a scaling law is fitted against, recorded with every run."""
    counts = count_parameters(model)
    mean_len = float(train_positions(train_set, model_cfg.max_len).mean())
    flops = flops_per_token(model_cfg, train_set.num_items, max(1, round(mean_len)))
    return ScalingFacts(
        non_embedding_params=counts.non_embedding,
        embedding_params=counts.embedding,
        flops_per_token_forward=flops.forward,
        flops_per_token_training=flops.training,
        tokens=tokens,
        compute_flops=flops.training * tokens,
        train_interactions=int(train_set.num_interactions),
        data_fraction=data_fraction,
        epochs=epochs,
        steps=steps,
        wall_time_s=round(wall_time_s, 3),
        peak_memory_mib=round(peak_memory_mib(device), 1),
        hardware=hardware(device, dist),
    )


def peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA; elsewhere the process's peak resident set size
    (which includes the Python process and the dataset, not only tensors)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def hardware(device: torch.device, dist: Dist) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "world_size": dist.world_size,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def dataset_record(dataset: SequenceDataset, split: Split) -> dict[str, Any]:
    """``dataset.json`` of a run: the data it trained on and how it was split."""
    return {
        "name": dataset.name,
        "recipe": dataset.recipe,
        "statistics": dataset_statistics(dataset),
        "split": split.name,
        "train_users": split.train.num_users,
        "train_interactions": int(split.train.num_interactions),
    }
