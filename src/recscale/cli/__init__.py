"""The ``recscale`` command: parse arguments, call one library function, print the result.

User errors (:class:`RecscaleError`, a bad option or argument, a file the system refuses)
become one line on stderr and exit code 2; warnings are one line each. Commands import
the library lazily, so ``recscale --help`` starts without loading torch.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.exceptions import Abort

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


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and exit with its status."""
    warnings.formatwarning = _one_line_warning
    try:
        status = app(args=argv, standalone_mode=False, prog_name="recscale")
    except RecscaleError as err:
        _fail(str(err))
    except NoArgsIsHelpError as err:
        err.show()
        sys.exit(2)
    except UsageError as err:
        command = err.ctx.command_path if err.ctx is not None else "recscale"
        _fail(f"{err.format_message()} (see {command} --help)")
    except ClickException as err:
        _fail(err.format_message(), err.exit_code)
    except Abort:
        _fail("aborted", 1)
    except OSError as err:
        if err.filename is None:
            raise  # not about a file the user named: a bug, with its traceback
        _fail(f"{err.filename}: {err.strerror}")
    sys.exit(status if isinstance(status, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    # One line, whatever the message holds (a library's hint on a second line included).
    print("error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(code)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return "warning: " + " ".join(str(message).split()) + "\n"
