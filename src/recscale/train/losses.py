"""Next-item training losses, on every position of every sequence.

Each loss is built from a :class:`LossConfig` and called as
``loss(model, hidden [B,N,D], targets [B,N], generator) -> (loss_sum, count)``: the sum
over positions whose target is not 0 (padding) and their number, so the trainer can
divide by the global count across ranks and micro-batches. Logits are
``query @ item.T / temperature`` computed in fp32, with ``query = model.query_vectors``
and ``item = model.item_vectors``; row 0 of the item table (padding) is never a class.

Negatives are drawn with ``generator`` on its own device (a CPU generator keeps runs
reproducible across devices) and moved to the model's.

``loss.impl`` picks how the same loss is computed: ``"fast"`` (default) uses the chunked
kernels of ``chunked_ce.py`` and ``sampled.py``, ``"reference"`` the plain PyTorch path
they are tested against (same draws from ``generator``, same values and gradients up to
float rounding). ``loss.sharing`` is a choice of loss, not of implementation: negatives
drawn per position (the HSTU code), per sequence, or per batch.

Measured on Amazon Beauty (12,101 items; HSTU 2 blocks d=64, cosine / 0.05, 2M training
tokens, best-validation checkpoint, full ranking, 22,363 test users, one seed), test
HR@10 / NDCG@10: 256 negatives per position .0753 / .0439; per sequence .0744 / .0438;
1,024 per batch .0749 / .0456; 2,048 per batch .0745 / .0454 (one standard error ~.0018 /
.0011). On an 18.4K-item catalogue shaped like Amazon Sports, 1,024 per batch trains
about 5x faster than the plain full softmax and 7x faster than the per-position
reference (``benchmarks/bench_train.py``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator

from recscale.config import StrictModel
from recscale.errors import RecscaleError
from recscale.models.contract import Recommender
from recscale.registry import Registry
from recscale.train.chunked_ce import (
    chunked_cross_entropy,
    cross_entropy_reference,
    shared_sampled_cross_entropy,
)
from recscale.train.gbce import gbce_loss
from recscale.train.sampled import (  # noqa: F401  (per_position_logits: tests, callers)
    DENSE_GATHER_RATIO,
    item_rows,
    num_items_of,
    per_position_logits,
    per_position_logits_fast,
    per_sequence_logits,
    rows_of,
)


class LossConfig(StrictModel):
    """Which loss and its knobs; defaults follow the HSTU public configs (Zhai et al. 2024)."""

    # A loss registered in LOSSES (``recscale choices losses``).
    name: str = "sampled_softmax"
    num_negatives: int = Field(128, ge=1, description="sampled_softmax: negatives per step")
    shared_negatives: bool | None = Field(
        None,
        description="sampled_softmax: one set of negatives for the whole batch (None: true)"
        " or a set per position (false, as the HSTU code samples them); see sharing",
    )
    sharing: Literal["batch", "sequence", "position"] | None = Field(
        None,
        description="sampled_softmax: which positions share one set of negatives: the batch,"
        " each sequence, or none (None: from shared_negatives)",
    )
    impl: Literal["reference", "fast"] = Field(
        "fast",
        description="full_softmax, sampled_softmax per position or per batch: 'fast' computes"
        " the same loss in chunks (no [positions, items] or [positions, negatives, D]"
        " tensor); 'reference' is the plain PyTorch path",
    )
    temperature: float | None = Field(None, gt=0, description="None: the model's temperature")
    logq_correction: bool = Field(
        False, description="subtract log sampling probability from negative logits"
    )
    in_batch_negatives: bool = Field(
        False,
        description="sampled_softmax with sharing=batch: the batch's distinct targets are"
        " negatives too, beside the sampled ones (mixed negative sampling, Yang et al. 2020)",
    )
    behaviour_weight: float = Field(
        1.0, ge=0.0, description="weight of the next-behaviour loss (model.predict_behaviour)"
    )
    gbce_t: float = Field(
        0.75, ge=0.0, le=1.0, description="gbce: calibration t (0: plain BCE; gSASRec 0.75)"
    )

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        # LOSSES fills as this module is imported, before any config is validated.
        return LOSSES.check(value)

    @model_validator(mode="after")
    def _one_sharing(self) -> LossConfig:
        if (
            self.sharing is not None
            and self.shared_negatives is not None
            and self.shared_negatives != (self.sharing != "position")
        ):
            raise ValueError(
                f"sharing={self.sharing!r} contradicts shared_negatives={self.shared_negatives};"
                " set only one of them"
            )
        if self.in_batch_negatives and self.negatives_shared_by != "batch":
            raise ValueError("in_batch_negatives needs sharing=batch")
        return self

    @property
    def negatives_shared_by(self) -> str:
        """``"batch"``, ``"sequence"`` or ``"position"``."""
        if self.sharing is not None:
            return self.sharing
        return "position" if self.shared_negatives is False else "batch"


LOSSES: Registry[type[Loss]] = Registry("loss")
register_loss = LOSSES.register


def build_loss(cfg: LossConfig, **kwargs: Any) -> Loss:
    """The registered loss named ``cfg.name``; ``kwargs`` go to its constructor."""
    return LOSSES.get(cfg.name)(cfg, **kwargs)


class Loss:
    """Base: selects the target positions and sets up the logit scale."""

    def __init__(self, cfg: LossConfig) -> None:
        self.cfg = cfg

    def temperature(self, model: Recommender) -> float:
        return float(
            self.cfg.temperature if self.cfg.temperature is not None else model.temperature
        )

    def __call__(
        self,
        model: Recommender,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, int]:
        """``hidden [B,N,D]``, ``targets [B,N]`` (0 = no target) -> ``(sum, count)``."""
        mask = targets != 0
        count = int(mask.sum())
        if count == 0:
            return hidden.sum() * 0.0, 0
        query = model.query_vectors(hidden[mask]).float()  # [M, D]
        pos = targets[mask]  # [M]
        return self.positions(model, query, pos, targets, mask, generator), count

    def positions(
        self,
        model: Recommender,
        query: torch.Tensor,
        pos: torch.Tensor,
        targets: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Summed loss of ``M`` positions: ``query [M, D]``, positive items ``pos [M]``."""
        raise NotImplementedError


def _randint(
    high: int, size: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Uniform ids in ``1..high`` drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    return torch.randint(1, high + 1, size, generator=generator, device=where).to(device)


@register_loss("full_softmax")
class FullSoftmax(Loss):
    """Cross-entropy over all items ``1..num_items``.

    ``impl="fast"`` (:func:`~recscale.train.chunked_ce.chunked_cross_entropy`) never holds
    the ``[M, I]`` logit matrix, so memory stays flat in catalogue size; ``"reference"``
    is ``F.cross_entropy`` on the full logits.
    """

    def __init__(self, cfg: LossConfig, catalogue: torch.Tensor | None = None) -> None:
        """``catalogue``: bool ``[num_items + 1]``, the items that exist at training time
        (None: all). The others are no class at all, so they get no gradient as negatives
        (the ``cold_items`` split: items that arrive after training)."""
        super().__init__(cfg)
        self.catalogue = catalogue

    def positions(self, model, query, pos, targets, mask, generator):
        ce = chunked_cross_entropy if self.cfg.impl == "fast" else cross_entropy_reference
        if self.catalogue is None:
            items = model.item_vectors().float()[1:]  # [I, D]
            return ce(query, items, pos - 1, self.temperature(model))
        known = self.catalogue.to(pos.device)
        ids = torch.nonzero(known).squeeze(1)
        index = torch.cumsum(known.long(), 0) - 1  # item id -> its row among the known
        return ce(query, model.item_vectors(ids).float(), index[pos], self.temperature(model))


@register_loss("sampled_softmax")
class SampledSoftmax(Loss):
    """Softmax over the positive and ``num_negatives`` sampled items.

    Negatives are uniform over ``1..num_items`` unless ``probs`` (``[num_items + 1]``,
    ``probs[0] = 0``) gives another distribution. A negative equal to the position's
    positive (an accidental hit) is masked out. With ``logq_correction`` each negative's
    logit is lowered by ``log(K q_j)`` (K negatives drawn from q), so that
    ``exp(s_pos) + sum_j exp(s_j) / (K q_j)`` estimates the full partition function
    (Bengio & Senecal 2008; Jean et al. 2015): the loss then estimates full-softmax
    cross-entropy, and with all items drawn once it equals it. Under uniform sampling the
    correction is the constant ``log(num_items / K)``.

    ``sharing`` says who shares a set of ``K`` draws: every position its own (``[M, K]``,
    the HSTU code), each sequence (``[B, K]``), or the whole batch (``[K]``, one matmul).
    With ``in_batch_negatives`` the batch's distinct targets join the batch's draws
    (see :meth:`add_batch_items` for their logQ correction).
    """

    def __init__(self, cfg: LossConfig, probs: torch.Tensor | None = None) -> None:
        super().__init__(cfg)
        if probs is not None and float(probs[0]) != 0.0:
            raise ValueError("probs[0] (padding) must be 0")
        self.probs = probs

    def sample(
        self,
        num_items: int,
        size: tuple[int, ...],
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        if self.probs is None:
            return _randint(num_items, size, generator, device)
        where = generator.device if generator is not None else device
        probs = self.probs.to(where)
        flat = torch.multinomial(probs, math.prod(size), replacement=True, generator=generator)
        return flat.view(size).to(device)

    def log_kq(self, negatives: torch.Tensor, num_items: int) -> torch.Tensor | float:
        k = self.cfg.num_negatives
        if self.probs is None:
            return math.log(k / num_items)
        return torch.log(k * self.probs.to(negatives.device)[negatives].float())

    def positions(self, model, query, pos, targets, mask, generator):
        num_items, k = num_items_of(model), self.cfg.num_negatives
        tau = self.temperature(model)
        sharing, fast = self.cfg.negatives_shared_by, self.cfg.impl == "fast"
        logq = self.cfg.logq_correction
        if sharing == "batch":
            negatives = self.sample(num_items, (k,), generator, query.device)  # [K]
            shift = self.log_kq(negatives, num_items) if logq else None
            if self.cfg.in_batch_negatives:
                negatives, shift = self.add_batch_items(pos, negatives, num_items)
            if fast:
                # One gather for positives and negatives: one scatter-add in backward.
                vectors = item_rows(model, torch.cat([pos, negatives]))
                positive, vectors = vectors.split([len(pos), len(negatives)])
                bias = None if shift is None else -shift
                return shared_sampled_cross_entropy(
                    query, positive, vectors, tau, bias, positive_ids=pos, negative_ids=negatives
                )
            neg_logits = query @ model.item_vectors(negatives).float().T / tau  # [M, K]
            hits = pos.unsqueeze(1) == negatives.unsqueeze(0)
        elif sharing == "sequence":
            negatives = self.sample(num_items, (mask.shape[0], k), generator, query.device)
            vectors = item_rows(model, negatives)  # [B, K, D]
            neg_logits = per_sequence_logits(query, vectors, mask) / tau  # [M, K]
            negatives = negatives[rows_of(mask)]  # [M, K]: each position's own negatives
            hits = pos.unsqueeze(1) == negatives
            shift = self.log_kq(negatives, num_items) if logq else None
        else:
            negatives = self.sample(num_items, (len(pos), k), generator, query.device)  # [M, K]
            if fast:
                neg_logits = per_position_logits_fast(model, query, negatives) / tau
            else:
                neg_logits = per_position_logits(model, query, negatives) / tau
            hits = pos.unsqueeze(1) == negatives
            shift = self.log_kq(negatives, num_items) if logq else None
        pos_logit = (query * model.item_vectors(pos).float()).sum(-1, keepdim=True) / tau
        if shift is not None:
            neg_logits = neg_logits - shift
        neg_logits = neg_logits.masked_fill(hits, -torch.inf)
        logits = torch.cat([pos_logit, neg_logits], dim=1)
        return -(pos_logit.squeeze(1) - torch.logsumexp(logits, dim=1)).sum()

    def add_batch_items(
        self, pos: torch.Tensor, negatives: torch.Tensor, num_items: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mixed negatives: the batch's distinct targets ``U`` before the sampled ``K``.

        Returns ``(ids [U + K], shift [U + K] | None)``. With ``logq_correction`` every
        column stands for the expected number of times the mixed sample holds its item,
        ``E_j = c_j + K q_j`` (``c_j`` its count among the batch's targets): an in-batch
        column counts its ``c_j`` copies, ``shift = log(E_j / c_j)``; a sampled one
        ``shift = log E_j``. ``exp(s_pos) + sum exp(s_j - shift_j)`` then estimates the
        full partition function, as the plain logQ correction does.
        """
        batch_items, counts = torch.unique(pos, return_counts=True)
        ids = torch.cat([batch_items, negatives])
        if not self.cfg.logq_correction:
            return ids, None
        k = self.cfg.num_negatives
        if self.probs is None:
            kq = torch.full(ids.shape, k / num_items, device=ids.device)
        else:
            kq = k * self.probs.to(ids.device)[ids].float()
        where = torch.searchsorted(batch_items, ids).clamp(max=len(batch_items) - 1)
        c = torch.where(batch_items[where] == ids, counts[where], 0).float()
        expected = c + kq
        copies = torch.cat([counts.float(), torch.ones_like(negatives, dtype=torch.float)])
        return ids, torch.log(expected / copies)


@register_loss("in_batch")
class InBatch(Loss):
    """Softmax over the distinct target items of the batch.

    Every distinct item is one class, so other positions with the same target are not
    negatives of each other. With ``logq_correction`` every logit is lowered by the log
    of the item's in-batch frequency, the sampling-bias correction of Yi et al. 2019
    (popular items appear in more batches and would otherwise be over-penalised).
    """

    def positions(self, model, query, pos, targets, mask, generator):
        items, column, freq = torch.unique(pos, return_inverse=True, return_counts=True)
        logits = query @ model.item_vectors(items).float().T / self.temperature(model)  # [M, U]
        if self.cfg.logq_correction:
            logits = logits - torch.log(freq.float() / len(pos))
        return F.cross_entropy(logits, column, reduction="sum")


@register_loss("bce")
class BinaryCrossEntropy(Loss):
    """SASRec's loss (Kang & McAuley 2018): one uniform negative per position,
    ``-log sigmoid(s_pos) - log(1 - sigmoid(s_neg))``.

    As in the SASRec code the negative avoids the items of the same sequence (here: the
    targets of the same row, which are the sequence shifted by one); a negative still
    colliding after a few redraws is dropped from the sum.
    """

    redraws = 8

    def __call__(self, model, hidden, targets, generator=None):
        mask = targets != 0
        count = int(mask.sum())
        if count == 0:
            return hidden.sum() * 0.0, 0
        num_items = num_items_of(model)
        negatives = _randint(num_items, tuple(targets.shape), generator, targets.device)
        for _ in range(self.redraws):
            clash = (negatives.unsqueeze(2) == targets.unsqueeze(1)).any(dim=2) & mask
            if not bool(clash.any()):
                break
            fresh = _randint(num_items, tuple(targets.shape), generator, targets.device)
            negatives = torch.where(clash, fresh, negatives)
        clash = (negatives.unsqueeze(2) == targets.unsqueeze(1)).any(dim=2)
        tau = self.temperature(model)
        query = model.query_vectors(hidden[mask]).float()
        pos_logit = (query * model.item_vectors(targets[mask]).float()).sum(-1) / tau
        neg_logit = (query * model.item_vectors(negatives[mask]).float()).sum(-1) / tau
        neg_loss = F.softplus(neg_logit).masked_fill(clash[mask], 0.0)
        return (F.softplus(-pos_logit) + neg_loss).sum(), count


@register_loss("gbce")
class GeneralisedBCE(Loss):
    """gSASRec's gBCE (Petrov & Macdonald 2023; ``train/gbce.py``): ``num_negatives``
    uniform negatives per position, the positive's probability raised to ``beta`` so that
    sampling does not make the model overconfident. A negative equal to the position's
    target is left out of the sum."""

    def __call__(self, model, hidden, targets, generator=None):
        mask = targets != 0
        count = int(mask.sum())
        if count == 0:
            return hidden.sum() * 0.0, 0
        num_items = num_items_of(model)
        k = min(self.cfg.num_negatives, num_items - 1)
        positives = targets[mask]
        negatives = _randint(num_items, (count, k), generator, targets.device)
        tau = self.temperature(model)
        query = model.query_vectors(hidden[mask]).float()
        pos_logits = (query * model.item_vectors(positives).float()).sum(-1) / tau
        neg_logits = per_position_logits_fast(model, query, negatives) / tau
        valid = negatives != positives.unsqueeze(1)
        return gbce_loss(pos_logits, neg_logits, num_items, self.cfg.gbce_t, valid), count


def behaviour_loss(
    model: Any, hidden: torch.Tensor, targets: torch.Tensor, target_ratings: torch.Tensor | None
) -> torch.Tensor:
    """Summed cross-entropy of the next interaction's behaviour level (multi-behaviour
    auxiliary target) over positions with a target whose behaviour is a known level."""
    if target_ratings is None:
        raise ValueError("the model predicts behaviours but the batch has no ratings")
    levels = model.behaviour_ids(target_ratings)
    mask = (targets != 0) & (levels > 0)
    if not mask.any():
        return hidden.sum() * 0.0
    logits = model.behaviour_logits(hidden[mask], targets[mask]).float()
    return F.cross_entropy(logits, levels[mask] - 1, reduction="sum")


def training_catalogue(cfg, split) -> dict[str, Any]:
    """Loss arguments that keep items unseen in training out of it (``cold_items`` split):
    never a full-softmax class, never a sampled negative, so they get no gradient at all.
    Empty for every other split."""
    if cfg.data.split != "cold_items":
        return {}
    known = torch.zeros(split.train.num_items + 1, dtype=torch.bool)
    known[torch.from_numpy(split.train.items)] = True
    known[0] = False
    if cfg.loss.name == "full_softmax":
        return {"catalogue": known}
    if cfg.loss.name == "sampled_softmax":
        return {"probs": known.double() / known.sum()}
    raise RecscaleError(
        f"data.split cold_items: loss.name {cfg.loss.name!r} would train the held-out items "
        "as negatives; allowed: full_softmax, sampled_softmax"
    )
