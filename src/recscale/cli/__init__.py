"""The ``recscale`` command: parse arguments, call one library function, print the result.

User errors (:class:`RecscaleError`) become one line on stderr and exit code 2. Commands
import the library lazily, so ``recscale --help`` starts without loading torch.
"""

from __future__ import annotations

import sys

from recscale.cli import (
    choices_commands,
    data_commands,
    model_commands,
    run_commands,
    scaling_commands,
)
from recscale.cli.apps import app
from recscale.errors import RecscaleError

del (
    choices_commands,
    data_commands,
    model_commands,
    run_commands,
    scaling_commands,
)  # registered on import

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except RecscaleError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
