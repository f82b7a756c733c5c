"""From a ``DataConfig`` to a dataset, its split, and the model the data shapes
(the trainer's and the run loader's only data entry point)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from recscale.data import splits
from recscale.data.attributes import item_features
from recscale.data.dataset import SequenceDataset
from recscale.data.item_text import aligned_texts, registered_item_text, table_item_text
from recscale.data.merge import merge_domains
from recscale.data.store import load_dataset, read_path
from recscale.data.text_embeddings import embed_texts
from recscale.errors import RecscaleError
from recscale.registry import Registry

if TYPE_CHECKING:
    from recscale.models import SequenceRecommender
    from recscale.train.config import RunConfig

SPLITS: Registry = Registry("split")
SPLITS.register("leave_one_out")(lambda ds, cfg: splits.leave_one_out(ds))
SPLITS.register("test_only")(lambda ds, cfg: splits.leave_one_out_test_only(ds))
SPLITS.register("cold_items")(lambda ds, cfg: splits.cold_items(ds, cfg.cold_item_fraction))
SPLITS.register("temporal")(lambda ds, cfg: splits.temporal_split(ds, cfg.temporal_quantile))


def load_source(cfg) -> SequenceDataset:
    """The canonical dataset a ``DataConfig`` names (registered dataset or a user's file)."""
    if cfg.path is not None:
        if cfg.format is None:
            from recscale.data import format_names

            raise RecscaleError(f"data.path is set, so data.format is required ({format_names()})")
        return read_path(
            cfg.path,
            cfg.format,
            columns=cfg.columns,
            time_file=cfg.time_path,
            recipe_overrides=cfg.recipe or None,
        )
    if cfg.name is None:
        raise RecscaleError("set data.name (a registered dataset) or data.path with data.format")
    names = [n.strip() for n in cfg.name.split("+")]
    datasets = [
        load_dataset(n, data_dir=cfg.data_dir, recipe_overrides=cfg.recipe or None) for n in names
    ]
    if len(datasets) == 1:
        dataset = datasets[0]
    else:
        # "a+b": one id space with item domains, for cross-domain studies.
        dataset = merge_domains(datasets, shared_users=cfg.shared_users)
    return users_in_domains(dataset, cfg.domains) if cfg.domains else dataset


def users_in_domains(dataset: SequenceDataset, domains: list[str]) -> SequenceDataset:
    """The users whose every interaction is an item of ``domains`` (items keep their ids)."""
    if dataset.item_domains is None:
        raise RecscaleError("data.domains needs merged datasets with item domains (data.name: a+b)")
    unknown = [d for d in domains if d not in dataset.domain_names]
    if unknown:
        raise RecscaleError(
            f"data.domains: unknown domain(s) {unknown}; allowed: {list(dataset.domain_names)}"
        )
    wanted = np.zeros(len(dataset.domain_names) + 1, dtype=bool)
    wanted[[dataset.domain_names.index(d) + 1 for d in domains]] = True
    inside = wanted[dataset.item_domains[dataset.items]]
    user_of = np.repeat(np.arange(dataset.num_users), dataset.lengths)
    outside_per_user = np.bincount(user_of, weights=~inside, minlength=dataset.num_users)
    users = np.flatnonzero((outside_per_user == 0) & (dataset.lengths > 0))
    if len(users) == 0:
        raise RecscaleError(f"data.domains {domains}: no user has interactions only there")
    return dataset.select_users(users)


def prepare_data(
    cfg, seed: int, keep_ratings: bool = False
) -> tuple[SequenceDataset, splits.Split]:
    dataset = load_source(cfg)
    if cfg.behaviour == "none" and dataset.ratings is not None and not keep_ratings:
        # No model reads them: keep them out of every batch (rankers keep them for labels).
        dataset = replace(dataset, ratings=None)
    split = SPLITS.get(cfg.split)(dataset, cfg)
    if cfg.fraction < 1.0:
        split = splits.subsample_train(split, cfg.fraction, by=cfg.fraction_by, seed=seed)
    return dataset, split


# More distinct values than this are a continuous score, not a set of behaviour types.
MAX_BEHAVIOUR_LEVELS = 64


def behaviour_levels(dataset: SequenceDataset) -> list[float]:
    """The distinct ratings of ``dataset``, sorted: its behaviour vocabulary."""
    if dataset.ratings is None:
        raise RecscaleError(
            f"data.behaviour='rating' but dataset {dataset.name!r} has no ratings "
            "(use a source with ratings, e.g. ml-1m or ml-100k)"
        )
    values = np.unique(dataset.ratings[~np.isnan(dataset.ratings)])
    if len(values) > MAX_BEHAVIOUR_LEVELS:
        raise RecscaleError(
            f"data.behaviour='rating': dataset {dataset.name!r} has {len(values)} distinct "
            f"ratings; at most {MAX_BEHAVIOUR_LEVELS} behaviour levels are supported"
        )
    return [float(v) for v in values]


def build_run_model(
    cfg: RunConfig, dataset: SequenceDataset
) -> tuple[RunConfig, SequenceRecommender]:
    """The run's model, with the model fields the data decides filled into the returned
    config (feature vocabulary and slots, behaviour levels) and the item feature table set."""
    import torch

    from recscale.models import build_model

    update: dict = {}
    features = text = None
    kinds = [k for k in cfg.data.item_features if k != "text"]
    if kinds:
        features = item_features(dataset, kinds, cfg.data.data_dir)
        update["num_item_features"] = features.vocab_size
        update["item_feature_slots"] = features.table.shape[1]
    if "text" in cfg.data.item_features:
        text = item_text_embeddings(cfg.data, dataset, progress=cfg.train.progress)
        update["text_dim"] = text.shape[1]
    if cfg.data.behaviour == "rating":
        update["behaviour_levels"] = behaviour_levels(dataset)
    if update:
        model_cfg = cfg.model.model_validate({**cfg.model.model_dump(), **update})
        cfg = cfg.model_copy(update={"model": model_cfg})
    model = build_model(cfg.model, dataset.num_items)
    if features is not None and features.vocab_size:
        model.set_item_features(torch.from_numpy(features.table))
    if text is not None:
        model.set_item_text(torch.from_numpy(text))
    return cfg, model


def item_text_embeddings(data_cfg, dataset: SequenceDataset, progress: bool = True) -> np.ndarray:
    """``[num_items + 1, E]`` frozen sentence embeddings of the dataset's item texts (cached)."""
    if data_cfg.text_path is not None:
        by_raw_id = table_item_text(data_cfg.text_path, data_cfg.text_id, data_cfg.text_columns)
    else:
        by_raw_id = registered_item_text(dataset.name, data_cfg.data_dir)
    texts = aligned_texts(dataset, by_raw_id)
    if not any(texts):
        raise RecscaleError(
            f"data.item_features [text]: no item of {dataset.name!r} has text "
            "(do the item table's ids match the interaction file's?)"
        )
    return embed_texts(texts, data_cfg.text_model, progress=progress)
