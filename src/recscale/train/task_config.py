"""The config sections of the tasks beside retrieval: ``ranking:`` and ``generative:``.

Each is read only when ``task`` names it; :class:`recscale.train.config.RunConfig` checks
the rest of the config against the task.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from recscale.config import StrictModel
from recscale.models import RANKERS, SCORERS

RANKING_METRICS = ("auc", "gauc", "logloss")


class RankingConfig(StrictModel):
    """The ranking task (``task: ranking``): P(engage | history, candidate), trained with
    binary cross-entropy and scored by AUC, GAUC and logloss (``data/ranking.py``)."""

    # A ranker in models.ranker.RANKERS: target_aware (model.backbone reads the candidate
    # after the history) or din.
    ranker: str = "target_aware"
    # The scoring network on (final state, candidate vector): dot, mlp or ffn.
    scorer: str = "dot"
    # Sampled never-seen negatives per training positive (the paper varies 0.2 to 1.0).
    negative_ratio: float = Field(1.0, ge=0.0, le=100.0)
    # Negatives per held-out positive in validation and test; the same for every run, so
    # runs with different training ratios are scored on the same examples.
    # 0 (only with like_threshold): the held-out rated items alone, like vs not.
    eval_negatives: int = Field(1, ge=0, le=10_000)
    # With ratings: every rated item is an example labelled rating >= like_threshold.
    like_threshold: float | None = None
    # Interleave each history item with an action token holding its label (HSTU's items and
    # actions); default: on when like_threshold gives labels.
    interleave_labels: bool | None = None
    # Candidates per M-FALCON micro-batch at evaluation (target-aware rankers).
    micro_batch: int = Field(64, ge=1)
    # Selects the checkpoint and drives early stopping (logloss: lower is better).
    select_metric: Literal["auc", "gauc", "logloss"] = "auc"

    @field_validator("ranker", "scorer")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        registry = RANKERS if info.field_name == "ranker" else SCORERS
        registry.check(value)
        return value

    @property
    def interleave(self) -> bool:
        if self.interleave_labels is None:
            return self.like_threshold is not None
        return self.interleave_labels

    @property
    def protocol(self) -> str:
        """``ranking-loo-neg<K>``: each evaluated user's held-out item against K sampled
        never-seen items (labels by ``like`` under like_threshold)."""
        like = "" if self.like_threshold is None else f"-like{self.like_threshold:g}"
        return f"ranking-loo-neg{self.eval_negatives}{like}"


class GenerativeConfig(StrictModel):
    """Semantic-ID generative retrieval (``task: generative``): items become tuples of codes
    by residual k-means of their text embeddings (``data.text_model``), and model.backbone
    learns to emit the next item's codes; the ranked list is a constrained beam search's."""

    # Residual k-means levels and codes per level; a last level tells colliding items apart.
    levels: int = Field(3, ge=1, le=8)
    codebook_size: int = Field(64, ge=2, le=65_536)
    # Beams kept at evaluation; the final beams (history items dropped) are the ranked list,
    # so metrics exist for the eval.ks up to it.
    beam: int = Field(30, ge=1, le=1000)
    # Validation users scored after each epoch (a fixed random subset; None: all of them).
    valid_users: int | None = Field(1000, ge=1)
    select_metric: str = "ndcg@10"

    def ks(self, eval_ks: list[int]) -> list[int]:
        """The cut-offs the beam's list can score: eval.ks up to the beam width."""
        return [k for k in eval_ks if k <= self.beam]
