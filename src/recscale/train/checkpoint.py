"""Checkpoints without pickle: weights and tensor state in safetensors, the rest in JSON.

A checkpoint is a directory ``{model.safetensors, state.safetensors, state.json}``.
``state.json`` is written last and records the sha256 of the two tensor files, so a
checkpoint is whole exactly when its JSON parses and the hashes match; loading checks
both. It is written to a temporary sibling and swapped in with renames, so a crash
mid-write leaves the one before intact. With ``previous``, the checkpoint it replaces
is kept there, and a newest one that fails its checks falls back to it with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from recscale.errors import RecscaleError

MODEL_FILE = "model.safetensors"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
# Key of state.json that holds {file name: sha256} of the tensor files.
CHECKSUMS = "sha256"
# state.json's "layout" of a checkpoint sharded over ranks (recscale.train.sharded).
SHARDED_LAYOUT = "sharded"

Tensors = dict[str, torch.Tensor]


# The checkpoints a finished run directory keeps and a user may load (checkpoints/<name>).
RUN_CHECKPOINTS = ("best", "last")


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was passed over for an older good one."""


class CorruptCheckpoint(RecscaleError):
    """A checkpoint directory whose files are missing, truncated or altered."""


def save_checkpoint(
    directory: Path,
    model: torch.nn.Module | Tensors,
    state: dict[str, Any],
    tensors: Tensors,
    previous: Path | None = None,
) -> None:
    """Atomically write ``directory``: model weights (a module or its state dict), JSON
    ``state`` and extra ``tensors``; the checkpoint it replaces moves to ``previous`` when
    given, else is deleted."""
    directory = Path(directory)
    tmp = staging_dir(directory)
    sd = model.state_dict() if isinstance(model, torch.nn.Module) else model
    weights = {k: v.detach().contiguous().cpu() for k, v in sd.items()}
    files = {
        MODEL_FILE: save(weights),
        STATE_TENSORS: save({k: v.contiguous().cpu() for k, v in tensors.items()}),
    }
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, data in files.items():
            write_durably(tmp / name, data)
        sums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        seal(tmp, directory, state, sums, previous)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(directory, exc) from None


def staging_dir(directory: Path) -> Path:
    """Where a checkpoint is written before it is swapped in as ``directory``."""
    return directory.with_name(directory.name + ".tmp")


def seal(
    tmp: Path,
    directory: Path,
    state: dict[str, Any],
    sums: dict[str, str],
    previous: Path | None,
) -> None:
    """Write ``state.json`` (with the files' ``sums``) into ``tmp`` and swap it in as
    ``directory``. Last: the JSON vouches for files that are already on disk."""
    write_durably(tmp / STATE_JSON, json.dumps({**state, CHECKSUMS: sums}, indent=1).encode())
    _swap_in(tmp, directory, previous)


def write_error(directory: Path, exc: OSError) -> RecscaleError:
    return RecscaleError(
        f"cannot write checkpoint {directory} ({exc.strerror or exc}); "
        "the checkpoint before it is intact"
    )


def write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _swap_in(tmp: Path, directory: Path, previous: Path | None) -> None:
    """Rename ``tmp`` to ``directory``; at every instant one whole checkpoint is findable."""
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(directory, previous)
        else:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    fd = os.open(directory.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _candidates(directory: Path, previous: Path | None) -> list[Path]:
    """Where a checkpoint may be, newest first: itself, the copy an interrupted swap left
    (``.old``), the previous one."""
    directory = Path(directory)
    found = [directory, directory.with_name(directory.name + ".old")]
    if previous is not None:
        found.append(Path(previous))
    return [c for c in found if (c / STATE_JSON).is_file() or (c / MODEL_FILE).is_file()]


def find_checkpoint(directory: Path, previous: Path | None = None) -> Path | None:
    """The newest checkpoint at ``directory`` (or its fallbacks), unverified; None if none."""
    found = _candidates(directory, previous)
    return found[0] if found else None


def load_checkpoint(
    directory: Path, previous: Path | None = None
) -> tuple[Tensors, dict[str, Any], Tensors]:
    """Return ``(weights, state, tensors)`` from a checkpoint directory (see
    :func:`load_verified`)."""
    return load_verified(directory, previous)[1]


def load_verified(
    directory: Path, previous: Path | None = None, read: Callable[[Path], Any] | None = None
) -> tuple[Path, Any]:
    """The newest checkpoint that passes its checks, and where it was: ``directory``, or,
    with a warning, the copy an interrupted swap left or ``previous``. ``read`` (a
    checkpoint directory -> what it holds, raising :class:`CorruptCheckpoint`) defaults to
    ``(weights, state, tensors)`` of a single-file checkpoint."""
    problems: list[str] = []
    candidates = _candidates(directory, previous)
    for candidate in candidates:
        try:
            loaded = (read or _load_one)(candidate)
        except CorruptCheckpoint as err:
            problems.append(str(err))
            continue
        if problems:
            warnings.warn(
                f"{problems[0]}; using the older checkpoint {candidate} instead",
                CheckpointWarning,
                stacklevel=2,
            )
        return candidate, loaded
    if problems:
        fallback = f" or its previous copy {previous}" if Path(previous or "") in candidates else ""
        raise CorruptCheckpoint(f"{problems[0]}; no intact checkpoint in {directory}{fallback}")
    raise RecscaleError(f"no checkpoint in {directory} (expected {MODEL_FILE} and {STATE_JSON})")


def set_aside(directory: Path) -> None:
    """Move a damaged checkpoint out of the way (to ``<name>.corrupt``, for inspection), so
    the next save does not keep it as the previous one."""
    directory = Path(directory)
    if directory.exists():
        aside = directory.with_name(directory.name + ".corrupt")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(directory, aside)


def _load_one(directory: Path) -> tuple[Tensors, dict[str, Any], Tensors]:
    state = verified_state(directory)
    if state.get("layout") == SHARDED_LAYOUT:
        raise RecscaleError(
            f"{directory} is a sharded checkpoint (train.parallelism: fsdp); resume it with "
            "train.parallelism=fsdp, or use the run's checkpoints/best (whole weights)"
        )
    weights = _read_tensors(directory / MODEL_FILE)
    extra = directory / STATE_TENSORS
    tensors = _read_tensors(extra) if extra.exists() else {}
    return weights, state, tensors


def verified_state(directory: Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint whose files all match their recorded sha256."""
    meta = directory / STATE_JSON
    try:
        state = json.loads(meta.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CorruptCheckpoint(f"{meta}: missing (the checkpoint was not finished)") from None
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise CorruptCheckpoint(f"{meta}: corrupt checkpoint state ({exc})") from None
    if not isinstance(state, dict):
        raise CorruptCheckpoint(f"{meta}: corrupt checkpoint state (not a JSON object)")
    sums = state.pop(CHECKSUMS, None)  # absent in checkpoints written before checksums
    for name, expected in (sums or {}).items():
        path = directory / name
        if not path.is_file():
            raise CorruptCheckpoint(f"{path}: missing from the checkpoint")
        if sha256_of(path) != expected:
            raise CorruptCheckpoint(f"{path}: checksum mismatch (truncated or altered)")
    return state


def _read_tensors(path: Path) -> Tensors:
    if not path.is_file():
        raise CorruptCheckpoint(f"{path}: missing from the checkpoint")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptCheckpoint(f"{path}: not a readable safetensors file ({reason})") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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
