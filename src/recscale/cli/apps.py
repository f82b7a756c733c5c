"""The command groups; each ``*_commands`` module adds its commands to one of them."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Large sequential recommendation models and their scaling laws.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets: list, prepare, inspect.", no_args_is_help=True)
model_app = typer.Typer(help="Model configurations and their size.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
