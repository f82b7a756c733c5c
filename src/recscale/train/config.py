"""The run config: everything one training run needs, saved resolved in its directory.

Every value is checked when the config is loaded, against what the code accepts (the
registries of datasets, formats, splits, losses and protocols, the metrics the protocol
computes), so a mistake is one error naming the key before any data is read or any step
is trained. Files and directories the config names, ``train.init_from`` and the device
are checked by :func:`check_run_inputs` before a run starts (a sweep's earlier runs
create the directories its later ones start from).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from recscale.config import StrictModel, apply_overrides, load_yaml, merge, validate
from recscale.data.catalogue import DATASETS
from recscale.data.preprocess import Recipe
from recscale.data.readers import ROLES, TIME_FILE_FORMATS, format_names
from recscale.errors import RecscaleError
from recscale.eval.metrics import metric_names
from recscale.eval.protocols import parse_protocol
from recscale.models import ModelConfig
from recscale.models.encoder import attend_backbones, packing_backbones
from recscale.models.generative import GENERATIVE_BACKBONES
from recscale.train.data import SPLITS
from recscale.train.losses import LossConfig
from recscale.train.optim import OptimConfig
from recscale.train.task_config import GenerativeConfig, RankingConfig

DEVICES = "auto, cpu, cuda, cuda:N, mps"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


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
    # With data.path in a format that reads one (s3rec): a time file aligned with it,
    # ``user t1 t2 ...`` per line, as the Amazon datasets' S3-Rec time files.
    time_path: str | None = None
    # Role -> column name (or 0-based position) for table formats.
    columns: dict[str, str | int] | None = None
    data_dir: str | None = None
    recipe: dict[str, Any] = Field(default_factory=dict)
    # A split registered in train.data.SPLITS (``recscale choices splits``).
    split: str = "leave_one_out"
    temporal_quantile: float = Field(0.9, gt=0.0, lt=1.0)
    fraction: float = Field(1.0, gt=0.0, le=1.0)
    fraction_by: Literal["users", "interactions"] = "users"
    # Item side information fused into item vectors: "attributes" (genres, S3-Rec attribute
    # maps), "domain" (a merged dataset's domain per item) and/or "text" (a learned projection
    # of each item's frozen sentence embedding; data/item_text.py, data/text_embeddings.py).
    item_features: list[Literal["attributes", "domain", "text"]] = Field(default_factory=list)
    # With "text": the sentence-transformers model (a packaged name or a local directory) and,
    # for a user's own items, a CSV/Parquet item table, its id column and its text columns
    # (empty: every other column). Registered MovieLens datasets read titles and genres.
    text_model: str = "all-MiniLM-L6-v2"
    text_path: str | None = None
    text_id: str = "item"
    text_columns: list[str] = Field(default_factory=list)
    # The cold_items split: the share of items held out of training (a fixed random set).
    cold_item_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    # Multi-behaviour: "rating" feeds each interaction's rating as a behaviour input.
    behaviour: Literal["none", "rating"] = "none"
    # With merged datasets: keep only the users whose interactions all lie in these domains
    # (train on one domain); the item id space stays the merged one, so runs on different
    # domains share item ids and can initialise from each other (train.init_from).
    domains: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _registered_datasets(cls, value: str | None) -> str | None:
        if value is not None:
            unknown = [n.strip() for n in value.split("+") if n.strip() not in DATASETS]
            if unknown:
                raise ValueError(
                    f"unknown dataset {', '.join(map(repr, unknown))}; allowed: "
                    f"{', '.join(DATASETS.names())} (several joined by '+'), or data.path"
                )
        return value

    @field_validator("format")
    @classmethod
    def _registered_format(cls, value: str | None) -> str | None:
        if value is not None and value not in format_names():
            raise ValueError(f"unknown data format; allowed: {', '.join(format_names())}")
        return value

    @property
    def label(self) -> str:
        """The registered dataset's name, or the user's file."""
        return self.name or str(self.path)

    @field_validator("split")
    @classmethod
    def _registered_split(cls, value: str) -> str:
        return SPLITS.check(value)

    @field_validator("columns")
    @classmethod
    def _roles(cls, value: dict[str, str | int] | None) -> dict[str, str | int] | None:
        if value is not None:
            unknown = sorted(set(value) - set(ROLES))
            if unknown:
                raise ValueError(f"unknown role(s) {unknown}; allowed: {', '.join(ROLES)}")
            if not {"user", "item"} <= set(value):
                raise ValueError("a column mapping needs both 'user' and 'item'")
        return value

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Recipe.build(None, value)
        except RecscaleError as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.path is not None and self.format is None:
            allowed = ", ".join(format_names())
            raise ValueError(f"data.path is set, so data.format is required; allowed: {allowed}")
        if self.time_path is not None:
            if self.path is None:
                raise ValueError("data.time_path needs data.path (the file it lines up with)")
            if self.format not in TIME_FILE_FORMATS:
                raise ValueError(
                    f"data.time_path: format {self.format!r} reads no separate time file; "
                    f"allowed: {', '.join(TIME_FILE_FORMATS)}"
                )
        if self.path is None and self.name is None:
            raise ValueError("set data.name (a registered dataset) or data.path with data.format")
        if self.domains and (self.path is not None or "+" not in (self.name or "")):
            raise ValueError("data.domains needs merged datasets (data.name: a+b)")
        return self


def check_paths(data: DataConfig, source: str = "config") -> None:
    """The files and directories ``data`` names exist (a user error naming the key if not)."""
    for key, path, kind in (
        ("data.path", data.path, "file"),
        ("data.time_path", data.time_path, "file"),
        ("data.data_dir", data.data_dir, "directory"),
    ):
        if path is None:
            continue
        found = Path(path).is_file() if kind == "file" else Path(path).is_dir()
        if not found:
            raise RecscaleError(f"{source}: {key}: {path}: no such {kind}")


class EvalConfig(StrictModel):
    # An evaluation protocol (``recscale choices protocols``): full, sampled-100, ...
    protocol: str = "full"
    # Cut-offs of hr@k and ndcg@k.
    ks: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 5, 10, 20, 50, 100, 200], min_length=1
    )
    batch_size: int = Field(256, ge=1)
    # Metric that selects the checkpoint and drives early stopping (higher is better):
    # hr@k or ndcg@k for a k in ks, or mrr.
    select_metric: str = "ndcg@10"
    # "valid": best validation checkpoint, then test (the proper protocol).
    # "test": the HSTU public code's reading, best epoch on test (legacy, labelled as such).
    selection: Literal["valid", "test"] = "valid"
    # Also evaluate test at every evaluation, to report the legacy best-on-test reading beside
    # the proper one (costs one more evaluation per epoch).
    track_test: bool = False

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        try:
            parse_protocol(value)
        except RecscaleError as err:
            raise ValueError(str(err)) from None
        return value

    @field_validator("select_metric")
    @classmethod
    def _computed_metric(cls, value: str, info: ValidationInfo) -> str:
        ks = info.data.get("ks")
        if ks is None:  # ks itself is invalid and reported
            return value
        allowed = metric_names(ks)
        if value not in allowed:
            raise ValueError(
                f"{value!r} is not computed with eval.ks={sorted(set(ks))}; "
                f"allowed: {', '.join(allowed)}"
            )
        return value


class TrainConfig(StrictModel):
    epochs: int = Field(100, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="stop after this many target positions")
    batch_size: int = Field(128, ge=1)
    # Length-bucketed batches: users sorted by length within runs of this many batches, so
    # a batch pads little (see recscale.data.batching.train_batches); None: plain shuffle.
    bucket_batches: int | None = Field(None, ge=1)
    # Packed batches: each batch's users packed several to a row, each attending only to
    # itself, so padding costs almost nothing and the step computes what the padded batch
    # would (models.encoder.packing_backbones).
    pack_batches: bool = False
    eval_every: int = Field(1, ge=1)
    patience: int | None = Field(
        10, ge=1, description="evaluations without improvement before stopping"
    )
    precision: Literal["fp32", "bf16"] = "fp32"
    # auto, cpu, cuda, cuda:N or mps.
    device: str = "auto"
    num_threads: int | None = Field(None, ge=1)
    tensorboard: bool = False
    progress: bool = True
    # Training-time noise: each input item replaced by a random item with this probability
    # (targets stay clean), for noise-robustness studies beside the test-time `noise` task.
    input_noise: float = Field(0.0, ge=0.0, lt=1.0)
    # Start from another run's weights (its best checkpoint; or a checkpoint directory),
    # e.g. a model pretrained on another domain: transfer by fine-tuning. Shapes must match.
    init_from: str | None = None
    # A mid-epoch checkpoint (as checkpoints/last; the one before kept as previous) every
    # this many optimizer steps and/or minutes, so a killed run loses at most that much.
    checkpoint_every_steps: int | None = Field(None, ge=1)
    checkpoint_every_minutes: float | None = Field(10.0, gt=0.0)
    # replicate: every rank holds the whole model; fsdp: FSDP2 shards parameters, gradients
    # and optimizer state over the ranks (see recscale.train.parallel).
    # The names of recscale.train.parallel.PARALLELISMS (a test holds them equal).
    parallelism: Literal["replicate", "fsdp"] = "replicate"

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError(f"unknown device; allowed: {DEVICES}")
        return value


class RunConfig(StrictModel):
    name: str | None = None
    # retrieval: next-item prediction over the catalogue; ranking: one candidate at a time
    # (the ``ranking`` section); generative: the next item's semantic ID, code by code.
    task: Literal["retrieval", "ranking", "generative"] = "retrieval"
    ranking: RankingConfig = Field(default_factory=lambda: RankingConfig())
    generative: GenerativeConfig = Field(default_factory=lambda: GenerativeConfig())
    # Seeds every generator (torch, numpy, the batch order per epoch).
    seed: int = Field(42, ge=0, le=2**32 - 1)
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

    @model_validator(mode="after")
    def _packing(self) -> RunConfig:
        if not self.train.pack_batches:
            return self
        if self.model.backbone not in packing_backbones():
            raise ValueError(
                f"train.pack_batches: model.backbone {self.model.backbone!r} cannot keep "
                f"packed users apart; allowed: {', '.join(packing_backbones())}"
            )
        if self.train.bucket_batches is not None:
            raise ValueError("set train.pack_batches or train.bucket_batches, not both")
        if self.loss.negatives_shared_by == "sequence":
            raise ValueError(
                "train.pack_batches puts several users in a row, so loss.sharing 'sequence' "
                "would share negatives between them; allowed with packing: batch, position"
            )
        return self

    @property
    def model_label(self) -> str:
        """The backbone, or for a ranking run with its own architecture (DIN) the ranker; a
        semantic-ID retriever is ``<backbone>-semantic-ids``."""
        if self.task == "ranking" and self.ranking.ranker != "target_aware":
            return self.ranking.ranker
        if self.task == "generative":
            return f"{self.model.backbone}-semantic-ids"
        return self.model.backbone

    @model_validator(mode="after")
    def _ranking_setup(self) -> RunConfig:
        if self.task != "ranking":
            return self
        r = self.ranking
        encoder = self.model.encoder_class
        if r.ranker == "target_aware" and not encoder.supports_attend:
            raise ValueError(
                f"ranking.ranker target_aware: model.backbone {self.model.backbone!r} cannot "
                f"rank; allowed: {', '.join(attend_backbones())} (or ranking.ranker: din)"
            )
        if r.eval_negatives == 0 and r.like_threshold is None:
            raise ValueError(
                "ranking.eval_negatives 0 needs ranking.like_threshold (else every held-out "
                "example is a positive)"
            )
        if r.negative_ratio == 0 and r.like_threshold is None:
            raise ValueError(
                "ranking.negative_ratio 0 without ranking.like_threshold leaves no negative "
                "examples; set a ratio > 0 or labels from ratings"
            )
        if self.data.behaviour != "none" or self.data.item_features:
            raise ValueError("task ranking reads item ids only (data.behaviour, item_features)")
        self._refuse_retrieval_only("binary cross-entropy")
        return self

    @model_validator(mode="after")
    def _generative_setup(self) -> RunConfig:
        if self.task != "generative":
            return self
        if self.model.backbone not in GENERATIVE_BACKBONES:
            raise ValueError(
                f"task generative: model.backbone {self.model.backbone!r} cannot decode codes; "
                f"allowed: {', '.join(GENERATIVE_BACKBONES)}"
            )
        if self.data.behaviour != "none" or self.data.item_features:
            raise ValueError(
                "task generative reads items through their codes only (data.behaviour, "
                "item_features); the codes come from data.text_model"
            )
        if parse_protocol(self.eval.protocol).kind != "full":
            raise ValueError(
                f"task generative ranks by beam search, so eval.protocol {self.eval.protocol!r}"
                " must rank the whole catalogue (full, full-no-exclude, full-window, "
                "full-filter-seen)"
            )
        g = self.generative
        names = [f"{m}@{k}" for k in g.ks(self.eval.ks) for m in ("hr", "ndcg")]
        if g.select_metric not in names:
            raise ValueError(
                f"generative.select_metric {g.select_metric!r}: allowed {', '.join(names)} "
                f"(eval.ks up to generative.beam {g.beam})"
            )
        self._refuse_retrieval_only("next-code cross-entropy")
        return self

    def _refuse_retrieval_only(self, loss: str) -> None:
        unused = [key for key, used in self._retrieval_only().items() if used]
        if unused:
            raise ValueError(
                f"task {self.task} does not use {', '.join(unused)}; leave them unset (its "
                f"loss is {loss}, it trains in fp32 in one process)"
            )

    def _retrieval_only(self) -> dict[str, bool]:
        """Keys the ranking trainer does not read -> whether this config sets them."""
        t, o = self.train, self.optim
        return {
            "train.max_tokens": t.max_tokens is not None,
            "train.bucket_batches": t.bucket_batches is not None,
            "train.pack_batches": t.pack_batches,
            "train.precision": t.precision != "fp32",
            "train.input_noise": t.input_noise > 0,
            "train.init_from": t.init_from is not None,
            "train.parallelism": t.parallelism != "replicate",
            "optim.grad_accum": o.grad_accum > 1,
            "optim.switch_to_sgd": o.switch_to_sgd is not None,
            "model.predict_behaviour": self.model.predict_behaviour,
        }


def load_run_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
    *,
    paths: bool = False,
) -> RunConfig:
    """Defaults < ``base`` < YAML file < ``overrides`` (``key.sub=value``); with ``paths``,
    the data files and directories it names must exist too (:func:`check_paths`).

    ``paths`` is off by default because some readers of a config need no data (a report
    reading a finished run's protocol) and a sweep reports a point whose file is missing
    as that run's failure; ``recscale train`` and :func:`train` check them (with
    :func:`check_run_inputs`) before any data is read."""
    data: dict[str, Any] = dict(base or {})
    source = "config"
    if path is not None:
        data = merge(data, load_yaml(path))
        source = str(path)
    data = apply_overrides(data, overrides or [])
    if path is None and isinstance(data.get("name"), str):
        source = f"run {data['name']!r}"  # e.g. one run of a sweep
    cfg = validate(RunConfig, data, source=source)
    if paths:
        check_paths(cfg.data, source)
    return cfg


def check_run_inputs(cfg: RunConfig, source: str = "config") -> None:
    """What a run needs from this machine, checked before it starts: the data paths,
    ``train.init_from`` (a run directory or a checkpoint directory) and the device."""
    check_paths(cfg.data, source)
    if cfg.train.init_from is not None and not Path(cfg.train.init_from).is_dir():
        raise RecscaleError(
            f"{source}: train.init_from: {cfg.train.init_from}: no such run or checkpoint directory"
        )
    check_device(cfg.train.device, source)
    if cfg.train.parallelism == "fsdp" and cfg.train.device == "mps":
        raise RecscaleError(f"{source}: train.parallelism: fsdp runs on CPU or CUDA, not mps")


def check_device(device: str, source: str = "config") -> None:
    import torch

    where = f"{source}: train.device: {device!r} asked for, but this machine has"
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(device.partition(":")[2] or 0) >= count:
            raise RecscaleError(f"{where} {f'{count} CUDA device(s)' if count else 'no CUDA'}")
    elif device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RecscaleError(f"{where} no Apple MPS")
