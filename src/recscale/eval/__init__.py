"""Evaluation: protocols as data, pure ranking metrics, and the chunked evaluator."""

from recscale.eval.evaluator import evaluate
from recscale.eval.metrics import (
    DEFAULT_KS,
    MetricSums,
    hit_rate,
    mrr,
    ndcg,
    rank_metrics,
    ranks_from_scores,
)
from recscale.eval.protocols import Protocol, parse_protocol, sample_negatives

__all__ = [
    "DEFAULT_KS",
    "MetricSums",
    "Protocol",
    "evaluate",
    "hit_rate",
    "mrr",
    "ndcg",
    "parse_protocol",
    "rank_metrics",
    "ranks_from_scores",
    "sample_negatives",
]
