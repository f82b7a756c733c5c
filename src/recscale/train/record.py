"""A finished run's record (``final.json``) and the results-table row made from it.

:class:`RunRecord` mirrors ``final.json`` key for key: ``to_dict()`` gives the same JSON the
trainer writes, ``from_dict()`` reads files from every version (``peak_memory_mib`` came later
and is optional). :func:`results_row` flattens a record into the row of a sweep's results
table. A leaf module: stdlib and the project error only, so the sweep, the report and the
trainer can all import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from recscale.errors import RecscaleError

FINAL_JSON = "final.json"

# Results-table columns, in order; the test metrics follow, then ``valid_<metric>``.
COORDINATES = ("run", "backbone", "layers", "dim", "heads", "max_len", "data_fraction", "seed")
RESULT_COLUMNS = (
    *COORDINATES,
    "non_embedding_params",
    "embedding_params",
    "flops_per_token",
    "tokens",
    "compute",
    "train_interactions",
    "apen",
    "protocol",
    "selection",
    "best_epoch",
    "epochs",
    "wall_time_s",
    "status",
)
VALID_PREFIX = "valid_"


@dataclass(frozen=True, kw_only=True)
class ScalingFacts:
    """The numbers a scaling law is fitted against (``final.json["facts"]``).

    ``compute_flops = flops_per_token_training · tokens``; ``tokens`` counts target positions
    seen in training; ``hardware`` is free-form (device, world_size, torch, python, machine,
    cpu_threads, and gpu on CUDA).
    """

    non_embedding_params: int
    embedding_params: int
    flops_per_token_forward: int
    flops_per_token_training: int
    tokens: int
    compute_flops: int
    train_interactions: int
    data_fraction: float
    epochs: int
    steps: int
    wall_time_s: float
    peak_memory_mib: float | None = None  # absent from runs made before it was recorded
    hardware: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        out["hardware"] = dict(self.hardware)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScalingFacts:
        return cls(**_checked(cls, d, "facts"))


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One finished run, as ``final.json`` holds it.

    ``test``/``valid`` map metric names to values on the selected checkpoint; ``valid`` is None
    when the split has no validation part. ``test_legacy_best_epoch`` (test metrics of the
    epoch best on test, plus ``epoch``) is kept only when selection was on valid and test was
    tracked. ``best_epoch`` is None when no evaluation picked one.
    """

    run: str
    protocol: str
    split: str
    selection: str  # "best-valid-then-test" or "legacy-best-epoch-on-test"
    select_metric: str
    best_epoch: int | None
    seed: int
    test: dict[str, float]
    stop_reason: str
    valid: dict[str, float] | None = None
    # Why the run stopped on a fault (a non-finite loss or weights), None when it did not.
    failure: str | None = None
    test_legacy_best_epoch: dict[str, float] | None = None
    facts: ScalingFacts

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able ``final.json`` mapping, keys in the trainer's order."""
        out = _to_dict(self)
        for key in ("test", "valid", "test_legacy_best_epoch"):
            if key in out:
                out[key] = dict(out[key])
        out["facts"] = self.facts.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunRecord:
        values = _checked(cls, d, "final.json")
        values["facts"] = ScalingFacts.from_dict(values["facts"])
        return cls(**values)


_OPTIONAL = {
    "peak_memory_mib",
    "valid",
    "failure",
    "test_legacy_best_epoch",
}  # written only when known


def _to_dict(record: Any) -> dict[str, Any]:
    out = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if not (f.name in _OPTIONAL and value is None):
            out[f.name] = value
    return out


def _checked(cls: type, d: Mapping[str, Any], what: str) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise RecscaleError(f"{what}: expected a mapping, got {type(d).__name__}")
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in d and n not in _OPTIONAL]
    unknown = [k for k in d if k not in names]
    if missing or unknown:
        raise RecscaleError(
            f"{what}: missing key(s) {', '.join(missing) or 'none'}, unknown key(s) "
            f"{', '.join(map(str, unknown)) or 'none'}; allowed: {', '.join(names)}"
        )
    return dict(d)


def read_run_record(path: str | Path) -> RunRecord:
    """``final.json`` (or a run directory holding one) -> :class:`RunRecord`."""
    path = Path(path)
    if path.is_dir():
        path = path / FINAL_JSON
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise RecscaleError(f"{path} does not exist (has the run finished?)") from None
    except json.JSONDecodeError as exc:
        raise RecscaleError(
            f"{path}:{exc.lineno}: damaged run record ({exc.msg}); delete it to redo the "
            "run's last step"
        ) from None
    except UnicodeDecodeError:
        raise RecscaleError(f"{path}: damaged run record (not UTF-8 text)") from None
    if not isinstance(data, dict):
        raise RecscaleError(f"{path}: damaged run record (not a JSON object)")
    try:
        return RunRecord.from_dict(data)
    except RecscaleError as err:
        raise RecscaleError(f"{path}: {err}") from None


def find_run_record(run_dir: str | Path) -> RunRecord | None:
    """The record of ``run_dir``, None when the run has not finished."""
    path = Path(run_dir) / FINAL_JSON
    return read_run_record(path) if path.is_file() else None


def write_run_record(record: RunRecord, path: str | Path) -> Path:
    """Write ``record`` whole or not at all (a run with a record counts as done), as the
    trainer always has (``indent=1``); a directory gets final.json."""
    path = Path(path)
    if path.is_dir():
        path = path / FINAL_JSON
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=1))
    tmp.replace(path)
    return path


def results_row(
    record: RunRecord, coords: Mapping[str, Any], apen: float | None = None
) -> dict[str, Any]:
    """The run's row of a results table: ``RESULT_COLUMNS``, then its test metrics, then
    ``valid_<metric>``.

    ``coords`` holds the run's ``COORDINATES`` as its config states them (the sweep's run
    name, backbone, layers, dim, heads, max_len, data fraction, seed); ``apen`` is the
    approximate entropy of its training sequences (the sweep computes it once per data set).
    """
    missing = [c for c in COORDINATES if c not in coords]
    if missing:
        raise ValueError(f"results_row needs coordinate(s) {', '.join(missing)}")
    facts = record.facts
    row: dict[str, Any] = {c: coords[c] for c in COORDINATES}
    row.update(
        {
            "non_embedding_params": facts.non_embedding_params,
            "embedding_params": facts.embedding_params,
            "flops_per_token": facts.flops_per_token_training,
            "tokens": facts.tokens,
            "compute": float(facts.compute_flops),
            "train_interactions": facts.train_interactions,
            "apen": apen,
            "protocol": record.protocol,
            "selection": record.selection,
            "best_epoch": record.best_epoch,
            "epochs": facts.epochs,
            "wall_time_s": facts.wall_time_s,
            "status": "finished" if record.failure is None else "failed",
        }
    )
    row.update({k: float(v) for k, v in record.test.items()})
    row.update({f"{VALID_PREFIX}{k}": float(v) for k, v in (record.valid or {}).items()})
    return row
