"""Data layer, in one direction: resolve files -> read -> preprocess -> cache -> split -> batch.

``catalogue`` declares the datasets (``specs`` are its types), ``sources`` finds their
files, ``readers`` parses them, ``preprocess`` applies a recipe, ``cache`` keeps the result
and ``store`` composes those stages into ``load_dataset`` / ``read_path``; ``splits`` and
``batching`` work on the loaded ``SequenceDataset``. Side information (``attributes``,
``titles``) reads side files through the same resolver.

The public entry points are re-exported here; see docs/CONTRACTS.md for the contracts
other layers code against.
"""

from recscale.data.batching import Batch, EvalBatch, eval_batches, to_device, train_batches
from recscale.data.catalogue import DATASETS, dataset_names, get_spec, list_datasets
from recscale.data.dataset import PAD, SequenceDataset
from recscale.data.preprocess import Recipe, preprocess
from recscale.data.quality import (
    apen,
    apen_batch,
    apen_per_user,
    compression_ratio,
    data_quality,
    lz_entropy_rate,
    shannon_entropy,
)
from recscale.data.readers import READERS, Interactions, format_names, read_interactions
from recscale.data.specs import DatasetSpec
from recscale.data.splits import (
    EvalSet,
    Split,
    leave_one_out,
    leave_one_out_test_only,
    subsample_train,
    temporal_split,
)
from recscale.data.stats import check_published, dataset_statistics
from recscale.data.store import load_dataset, read_path
from recscale.data.synthetic import markov_mixture

__all__ = [
    "DATASETS",
    "PAD",
    "READERS",
    "Batch",
    "DatasetSpec",
    "EvalBatch",
    "EvalSet",
    "Interactions",
    "Recipe",
    "SequenceDataset",
    "Split",
    "apen",
    "apen_batch",
    "apen_per_user",
    "check_published",
    "compression_ratio",
    "data_quality",
    "dataset_names",
    "dataset_statistics",
    "eval_batches",
    "format_names",
    "get_spec",
    "leave_one_out",
    "leave_one_out_test_only",
    "list_datasets",
    "load_dataset",
    "lz_entropy_rate",
    "markov_mixture",
    "preprocess",
    "read_interactions",
    "read_path",
    "shannon_entropy",
    "subsample_train",
    "temporal_split",
    "to_device",
    "train_batches",
]
