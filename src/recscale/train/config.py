"""The run config: everything one training run needs, saved resolved in its directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from recscale.config import StrictModel, apply_overrides, load_yaml, merge, validate
from recscale.models import ModelConfig
from recscale.train.losses import LossConfig
from recscale.train.optim import OptimConfig


class DataConfig(StrictModel):
    """Which data, how it is split, and how much of the training part is used."""

    # A registered dataset, or several joined by "+" merged into one id space with item
    # domains (cross-domain studies).
    name: str | None = "ml-1m-sasrec"
    # With several datasets: their user ids name the same people (merge by time).
    shared_users: bool = False
    # A user's own file instead of a registered dataset.
    path: str | None = None
    format: str | None = None
    columns: dict[str, str] | None = None
    data_dir: str | None = None
    recipe: dict[str, Any] = Field(default_factory=dict)
    split: Literal["leave_one_out", "test_only", "temporal"] = "leave_one_out"
    temporal_quantile: float = 0.9
    fraction: float = Field(1.0, gt=0.0, le=1.0)
    fraction_by: Literal["users", "interactions"] = "users"
    # Item side information fused into item vectors: "attributes" (genres, S3-Rec attribute
    # maps) and/or "domain" (a merged dataset's domain per item).
    item_features: list[Literal["attributes", "domain"]] = Field(default_factory=list)
    # Multi-behaviour: "rating" feeds each interaction's rating as a behaviour input.
    behaviour: Literal["none", "rating"] = "none"
    # With merged datasets: keep only the users whose interactions all lie in these domains
    # (train on one domain); the item id space stays the merged one, so runs on different
    # domains share item ids and can initialise from each other (train.init_from).
    domains: list[str] = Field(default_factory=list)


class EvalConfig(StrictModel):
    protocol: str = "full"
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10, 20, 50, 100, 200])
    batch_size: int = 256
    # Metric that selects the checkpoint and drives early stopping (higher is better).
    select_metric: str = "ndcg@10"
    # "valid": best validation checkpoint, then test (the proper protocol).
    # "test": the HSTU public code's reading, best epoch on test (legacy, labelled as such).
    selection: Literal["valid", "test"] = "valid"
    # Also evaluate test at every evaluation, to report the legacy best-on-test reading beside
    # the proper one (costs one more evaluation per epoch).
    track_test: bool = False


class TrainConfig(StrictModel):
    epochs: int = Field(100, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="stop after this many target positions")
    batch_size: int = Field(128, ge=1)
    eval_every: int = Field(1, ge=1)
    patience: int | None = Field(
        10, ge=1, description="evaluations without improvement before stopping"
    )
    precision: Literal["fp32", "bf16"] = "fp32"
    device: str = "auto"
    num_threads: int | None = None
    tensorboard: bool = False
    progress: bool = True
    # Training-time noise: each input item replaced by a random item with this probability
    # (targets stay clean), for noise-robustness studies beside the test-time `noise` task.
    input_noise: float = Field(0.0, ge=0.0, lt=1.0)
    # Start from another run's weights (its best checkpoint; or a checkpoint directory),
    # e.g. a model pretrained on another domain: transfer by fine-tuning. Shapes must match.
    init_from: str | None = None


class RunConfig(StrictModel):
    name: str | None = None
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _behaviour_source(self) -> RunConfig:
        if self.model.predict_behaviour and self.data.behaviour == "none":
            raise ValueError("model.predict_behaviour needs data.behaviour (allowed: rating)")
        return self


def load_run_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> RunConfig:
    """Defaults < ``base`` < YAML file < ``overrides`` (``key.sub=value``)."""
    data: dict[str, Any] = dict(base or {})
    source = "config"
    if path is not None:
        data = merge(data, load_yaml(path))
        source = str(path)
    data = apply_overrides(data, overrides or [])
    return validate(RunConfig, data, source=source)
