"""``recscale model ...``: model configurations and their size."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from recscale.cli.apps import model_app
from recscale.cli.output import AsJson, Overrides, console, kv_table, print_json


@model_app.command("size")
def model_size(
    config_or_preset: str,
    items: Annotated[int, typer.Option(help="Item catalogue size")] = 3416,
    seq_len: Annotated[
        int | None, typer.Option(help="Sequence length (default: the config's max_len)")
    ] = None,
    overrides: Overrides = None,
    as_json: AsJson = False,
) -> None:
    """Layers, width, parameters and FLOPs per token of a model config or preset."""
    from recscale.models import describe_size

    cfg = _model_config(config_or_preset, overrides or [])
    info = describe_size(cfg, items, seq_len or cfg.max_len)
    if as_json:
        print_json(info)
    else:
        console.print(kv_table(config_or_preset, info))


@model_app.command("presets")
def model_presets(as_json: AsJson = False) -> None:
    """Named model presets (size ladders and paper configurations)."""
    from recscale.models import describe_size, preset, preset_names

    rows = []
    for name in preset_names():
        cfg = preset(name)
        info = describe_size(cfg, 3416, cfg.max_len)
        rows.append(
            {
                "preset": name,
                **{
                    k: info[k]
                    for k in ("backbone", "layers", "dim", "heads", "non_embedding_params")
                },
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(title="presets (non-embedding params at 3,416 items)")
    for col in rows[0] if rows else []:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(table)


def _model_config(config_or_preset: str, overrides: list[str]):
    from recscale.config import apply_overrides, load_yaml, validate
    from recscale.models import ModelConfig, preset

    path = Path(config_or_preset)
    if path.suffix in (".yaml", ".yml") or path.exists():
        data = load_yaml(path)
        data = data.get("model", data)
    else:
        data = preset(config_or_preset).model_dump()
    return validate(ModelConfig, apply_overrides(data, overrides), source=config_or_preset)
