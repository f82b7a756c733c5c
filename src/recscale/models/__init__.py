"""Sequential recommenders behind one contract: SASRec, eSASRec, HSTU, Llama-style, GPT-style.

``build_model(cfg, num_items)`` returns a :class:`SequenceRecommender`;
``encode(items, timestamps, lengths) -> hidden [B, N, D]`` is causal, logits are
``query_vectors(hidden) @ item_vectors().T / temperature``.
"""

# Importing the backbones registers them in ENCODERS.
from recscale.models import din, esasrec, gpt, hstu, llama, sasrec
from recscale.models.base import SequenceRecommender, build_model
from recscale.models.config import (
    ESASRecOptions,
    GPTOptions,
    HSTUOptions,
    LlamaOptions,
    ModelConfig,
    SASRecOptions,
)
from recscale.models.encoder import ENCODERS, Encoder
from recscale.models.hstu import time_buckets
from recscale.models.presets import PRESETS, preset, preset_dict, preset_names
from recscale.models.ranker import RANKERS, SCORERS, RankingInputs, build_ranker
from recscale.models.size import (
    FlopCounts,
    ParamCounts,
    count_parameters,
    count_parameters_from_config,
    count_parameters_meta,
    describe_size,
    flops_per_token,
)

del din, esasrec, gpt, hstu, llama, sasrec

__all__ = [
    "ENCODERS",
    "PRESETS",
    "RANKERS",
    "SCORERS",
    "ESASRecOptions",
    "Encoder",
    "FlopCounts",
    "GPTOptions",
    "HSTUOptions",
    "LlamaOptions",
    "ModelConfig",
    "ParamCounts",
    "RankingInputs",
    "SASRecOptions",
    "SequenceRecommender",
    "build_model",
    "build_ranker",
    "count_parameters",
    "count_parameters_from_config",
    "count_parameters_meta",
    "describe_size",
    "flops_per_token",
    "preset",
    "preset_dict",
    "preset_names",
    "time_buckets",
]
