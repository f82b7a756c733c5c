"""Typed configs from YAML with dotted overrides and errors that name the key.

The config classes themselves live beside the code they configure (``ModelConfig`` in
``models/``, ``LossConfig`` in ``train/losses.py`` ...). This module only holds the
machinery every layer shares: reading YAML, applying ``key.sub=value`` overrides, and
turning pydantic's validation errors into one line a user can act on.

Precedence, lowest to highest: class defaults < preset < YAML file < ``--set`` overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from recscale.errors import RecscaleError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors, values are validated on assignment."""

    # No config value is ever infinite or NaN (YAML spells them .inf / .nan).
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False
    )


def read_text(path: str | Path, what: str = "file") -> str:
    """A text file's contents; a missing file or bytes that are not UTF-8 are user errors
    naming the file (and the line of the first bad byte)."""
    path = Path(path)
    if path.is_dir():
        raise RecscaleError(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise RecscaleError(f"{what} {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecscaleError(f"{what} {path}: cannot be read ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecscaleError(f"{path}:{line}: not valid UTF-8 text") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    text = read_text(path, "config file")
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise RecscaleError(f"{path}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise RecscaleError(f"{path}{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecscaleError(
            f"{path}: expected a mapping at the top level, got {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.layers=4"`` -> ``(["model", "layers"], 4)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecscaleError(f"override {text!r} must look like key.sub=value")
    parts = [part.strip() for part in key.strip().split(".")]
    if "" in parts:
        raise RecscaleError(f"override {text!r}: empty key part in {key.strip()!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, RecursionError):
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted override applied (creating sub-mappings)."""
    out = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise RecscaleError(f"override {text!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = _deep_copy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = _deep_copy(value)
    return out


def validate(cls: type[M], data: dict[str, Any], source: str = "config") -> M:
    """Build ``cls`` from ``data``; a bad value raises one line naming the key and the allowed."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise RecscaleError(f"{source}: {describe_validation_error(exc, cls)}") from None


def describe_validation_error(exc: ValidationError, cls: type[BaseModel]) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(cls, err["loc"][:-1])
            hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
            parts.append(f"unknown key {key!r}{hint}")
        elif err["type"] == "value_error":
            # Our own validators' messages say what is allowed, and a check across fields
            # names its keys (its input, a whole section, would only be noise).
            message, value = str(err["ctx"]["error"]), err.get("input")
            if not (err["loc"] and message.startswith(f"{key}.")):
                message = f"{key}: {message}" if err["loc"] else message
            parts.append(message if isinstance(value, dict) else f"{message} (got {_short(value)})")
        else:
            parts.append(f"{key}: {err['msg']} (got {_short(err.get('input'))})")
    return "; ".join(parts)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fields_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the sub-model at ``loc`` (pydantic does not report them)."""
    node: type[BaseModel] = cls
    for part in loc:
        field = node.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        node = annotation
    return sorted(node.model_fields)


def dump_yaml(model: BaseModel, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False))


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
