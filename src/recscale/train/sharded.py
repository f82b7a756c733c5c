"""Sharded checkpoints for FSDP runs, through ``torch.distributed.checkpoint`` (DCP).

Every rank writes its own shards of the weights and optimizer state as safetensors files
(DCP's Hugging Face storage: no pickle, offsets in each file's metadata), so a checkpoint
written by R ranks loads on any other number: DCP reads each rank's new slice from the
saved shards. The layout is ``{state.json, shards/*.safetensors}``; ``state.json`` holds
the progress and the optimizer's param groups, records the sha256 of every shard file and
is written last by rank 0, and the directory is swapped in with renames like a
single-file checkpoint (:mod:`recscale.train.checkpoint`), so the same checks and the same
``previous`` fallback apply. RNG states are saved per rank (``rng.rank<r>.*``): a resume on
the same number of ranks restores each rank's generators; on more ranks the new ones keep
their fresh seeds.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from recscale.errors import RecscaleError
from recscale.train import checkpoint as ckpt
from recscale.train.distributed import Dist, barrier
from recscale.train.optim import OptimConfig, OptimizerSwitch
from recscale.train.state import TrainState, load_for_resume, restore_progress

SHARDS = "shards"


def _tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """This rank's flat ``{name: tensor}`` view of the model and optimizer (DTensor shards;
    names ``model.<fqn>``, ``optim.<fqn>.<slot>``) and the optimizer's param groups."""
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    flat = {f"model.{k}": v for k, v in get_model_state_dict(model).items()}
    # A fresh optimizer gets zero state first, so a load has tensors to fill.
    optim = get_optimizer_state_dict(model, optimizer)
    for fqn, slots in optim["state"].items():
        for slot, value in slots.items():
            if torch.is_tensor(value):
                flat[f"optim.{fqn}.{slot}"] = value
    return flat, optim["param_groups"]


def _rng_prefix(rank: int) -> str:
    return f"rng.rank{rank}."


def save_sharded(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    sampler: torch.Generator,
    dist: Dist,
    previous: Path | None = None,
) -> None:
    """Collective (every rank calls it): checkpoint an FSDP run as ``directory``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    directory = Path(directory)
    tmp = ckpt.staging_dir(directory)
    flat, groups = _tensors(model, optimizer)
    prefix = _rng_prefix(dist.rank)
    flat.update({prefix + k: v for k, v in ckpt.rng_state({"sampler": sampler}).items()})
    try:
        if dist.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / SHARDS).mkdir(parents=True)
        barrier(dist)
        writer = HuggingFaceStorageWriter(str(tmp / SHARDS), save_distributed=True)
        dcp.save(flat, storage_writer=writer)
        barrier(dist)
        if dist.is_main:
            files = sorted((tmp / SHARDS).glob("*.safetensors"))
            sums = {f"{SHARDS}/{f.name}": ckpt.sha256_of(f) for f in files}
            meta = {
                "layout": ckpt.SHARDED_LAYOUT,
                "world_size": dist.world_size,
                "train_state": asdict(state),
                "optimizer": {"param_groups": groups, "type": type(optimizer).__name__},
            }
            ckpt.seal(tmp, directory, meta, sums, previous)
    except OSError as exc:
        if dist.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise ckpt.write_error(directory, exc) from None
    barrier(dist)


def _read_meta(directory: Path) -> dict[str, Any]:
    state = ckpt.verified_state(directory)
    if state.get("layout") != ckpt.SHARDED_LAYOUT:
        raise RecscaleError(
            f"{directory} is a checkpoint of an unsharded run (train.parallelism: replicate); "
            "resume it with train.parallelism=replicate"
        )
    return state


def restore_sharded(
    directory: Path,
    previous: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    switch: OptimizerSwitch,
    sampler: torch.Generator,
    optim_cfg: OptimConfig,
    dist: Dist,
) -> tuple[TrainState, torch.optim.Optimizer]:
    """Collective: load an FSDP checkpoint (``previous`` when ``directory`` is damaged) into
    this run's sharded model and optimizer, whatever number of ranks wrote it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    used, meta = load_for_resume(directory, previous, read=_read_meta)
    barrier(dist)  # every rank has chosen before rank 0 moves a damaged one aside
    if used != directory and dist.is_main:
        ckpt.set_aside(directory)
    state, optimizer = restore_progress(meta, used, model, optimizer, switch, optim_cfg)
    path = str(used / SHARDS)
    saved = HuggingFaceStorageReader(path).read_metadata().state_dict_metadata
    flat, _ = _tensors(model, optimizer)
    missing = [k for k in flat if k.startswith("model.") and k not in saved]
    if missing:
        raise RecscaleError(
            f"--resume from {used}: the checkpoint lacks {', '.join(missing[:3])}; "
            "resume with the config the run was started with"
        )
    prefix = _rng_prefix(dist.rank)
    rng_names = [k for k in saved if k.startswith(prefix)]
    flat.update({k: torch.empty(saved[k].size, dtype=saved[k].properties.dtype) for k in rng_names})
    # Slots of parameters that never had a gradient were not saved; they keep zeros.
    wanted = {k: v for k, v in flat.items() if k in saved}
    barrier(dist)
    dcp.load(wanted, storage_reader=HuggingFaceStorageReader(path))
    set_model_state_dict(
        model, {k.removeprefix("model."): v for k, v in flat.items() if k.startswith("model.")}
    )
    slots: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name.startswith("optim."):
            fqn, slot = name.removeprefix("optim.").rsplit(".", 1)
            slots.setdefault(fqn, {})[slot] = value
    groups = meta["optimizer"]["param_groups"]
    set_optimizer_state_dict(model, optimizer, {"state": slots, "param_groups": groups})
    ckpt.restore_rng({k.removeprefix(prefix): wanted[k] for k in rng_names}, {"sampler": sampler})
    return state, optimizer
