"""From a ``DataConfig`` to a dataset and its split (the trainer's only data entry point)."""

from __future__ import annotations

from recscale.data import splits
from recscale.data.dataset import SequenceDataset
from recscale.data.merge import merge_domains
from recscale.data.store import load_dataset, read_path
from recscale.errors import RecscaleError
from recscale.registry import Registry

SPLITS: Registry = Registry("split")
SPLITS.register("leave_one_out")(lambda ds, cfg: splits.leave_one_out(ds))
SPLITS.register("test_only")(lambda ds, cfg: splits.leave_one_out_test_only(ds))
SPLITS.register("temporal")(lambda ds, cfg: splits.temporal_split(ds, cfg.temporal_quantile))


def load_source(cfg) -> SequenceDataset:
    """The canonical dataset a ``DataConfig`` names (registered dataset or a user's file)."""
    if cfg.path is not None:
        if cfg.format is None:
            raise RecscaleError(
                "data.path is set, so data.format is required "
                "(sasrec, s3rec, recbole, csv, parquet)"
            )
        return read_path(cfg.path, cfg.format, columns=cfg.columns)
    if cfg.name is None:
        raise RecscaleError("set data.name (a registered dataset) or data.path with data.format")
    names = [n.strip() for n in cfg.name.split("+")]
    datasets = [
        load_dataset(n, data_dir=cfg.data_dir, recipe_overrides=cfg.recipe or None) for n in names
    ]
    if len(datasets) == 1:
        return datasets[0]
    # "a+b": one id space with item domains, for cross-domain studies.
    return merge_domains(datasets, shared_users=cfg.shared_users)


def prepare_data(cfg, seed: int) -> tuple[SequenceDataset, splits.Split]:
    dataset = load_source(cfg)
    split = SPLITS.get(cfg.split)(dataset, cfg)
    if cfg.fraction < 1.0:
        split = splits.subsample_train(split, cfg.fraction, by=cfg.fraction_by, seed=seed)
    return dataset, split
