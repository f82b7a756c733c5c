"""Training: losses, optimisers, checkpoints and the trainer.

``from recscale.train import train, load_run_config`` is the notebook entry point; the
names are resolved lazily so ``recscale.train.optim`` imports without the whole stack.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DataConfig": "recscale.train.config",
    "EvalConfig": "recscale.train.config",
    "RunConfig": "recscale.train.config",
    "TrainConfig": "recscale.train.config",
    "load_run_config": "recscale.train.config",
    "RunResult": "recscale.train.result",
    "train": "recscale.train.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'recscale.train' has no attribute {name!r}")
