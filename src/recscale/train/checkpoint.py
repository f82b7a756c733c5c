"""Checkpoints without pickle: weights and tensor state in safetensors, the rest in JSON.

A checkpoint is a directory ``{model.safetensors, state.safetensors, state.json}``.
It is written to a temporary sibling and swapped in with renames, so a crash
mid-write leaves the previous checkpoint intact (``load`` falls back to it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from recscale.errors import RecscaleError

MODEL_FILE = "model.safetensors"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


def save_checkpoint(
    directory: Path, model: torch.nn.Module, state: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> None:
    """Atomically write ``directory``: model weights, JSON ``state`` and extra ``tensors``."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / MODEL_FILE))
    save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp / STATE_TENSORS))
    (tmp / STATE_JSON).write_text(json.dumps(state, indent=1))
    _fsync_dir(tmp)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: Path) -> Path | None:
    """The checkpoint at ``directory``, or the previous one if a swap was interrupted."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / STATE_JSON).is_file() and (candidate / MODEL_FILE).is_file():
            return candidate
    return None


def load_checkpoint(
    directory: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor]]:
    """Return ``(weights, state, tensors)`` from a checkpoint directory."""
    found = find_checkpoint(directory)
    if found is None:
        raise RecscaleError(
            f"no checkpoint in {directory} (expected {MODEL_FILE} and {STATE_JSON})"
        )
    try:
        state = json.loads((found / STATE_JSON).read_text())
    except json.JSONDecodeError as exc:
        raise RecscaleError(f"{found / STATE_JSON}: corrupt checkpoint state ({exc})") from None
    tensors = load_file(str(found / STATE_TENSORS)) if (found / STATE_TENSORS).exists() else {}
    return load_file(str(found / MODEL_FILE)), state, tensors


def optimizer_to_flat(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Split an optimizer state dict into JSON-able structure and named tensors."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, slot in sd["state"].items():
        plain[str(index)] = {}
        for key, value in slot.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value
            else:
                plain[str(index)][key] = value
    return {
        "state": plain,
        "param_groups": sd["param_groups"],
        "type": type(optimizer).__name__,
    }, tensors


def optimizer_from_flat(
    optimizer: torch.optim.Optimizer, meta: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> None:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    """Every RNG state that affects training, as tensors (torch, CUDA, and named generators)."""
    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = st
    for name, gen in generators.items():
        out[f"rng.gen.{name}"] = gen.get_state()
    return out


def restore_rng(tensors: dict[str, torch.Tensor], generators: dict[str, torch.Generator]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if states:
            torch.cuda.set_rng_state_all(states)
    for name, gen in generators.items():
        key = f"rng.gen.{name}"
        if key in tensors:
            gen.set_state(tensors[key])


def _fsync_dir(path: Path) -> None:
    for file in path.iterdir():
        with open(file, "rb") as fh:
            os.fsync(fh.fileno())
