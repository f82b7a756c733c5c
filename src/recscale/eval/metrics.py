"""Ranking metrics as pure functions of tensors, and exact cross-rank accumulation.

Ranks are 1-based. Ties are counted **pessimistically**: an item scoring exactly the
target's score ranks above it. The HSTU code ranks with ``topk``, whose order among ties
is arbitrary; with continuous scores ties almost never happen, so the two agree, and where
they do happen (a collapsed model giving every item the same score) the pessimistic rule
scores it as the worst model, not the best. A NaN score counts as beating the target, so
a diverged model can never look good.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20, 50, 100, 200)


def ranks_from_scores(scores: torch.Tensor, target: torch.Tensor | int) -> torch.Tensor:
    """1-based rank of each row's target among its columns.

    Args:
        scores: ``[B, C]`` candidate scores; ``-inf`` marks a column that is not a candidate.
        target: the target's column, an ``int`` for all rows or a ``[B]`` long tensor.

    Returns:
        ``[B]`` long: ``1 + #{c != target : not (scores[c] < scores[target])}``.
    """
    rows = torch.arange(scores.shape[0], device=scores.device)
    if isinstance(target, int):
        target = torch.full_like(rows, target)
    target = target.to(scores.device)
    target_scores = scores[rows, target].unsqueeze(1)
    beats = ~(scores < target_scores)  # ties and NaN count against the target
    beats[rows, target] = False
    return 1 + beats.sum(dim=1)


def hit_rate(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float: 1 where the target is in the top ``k``."""
    return (ranks <= k).to(torch.float64)


def ndcg(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """``[B]`` float: ``1 / log2(rank + 1)`` inside the top ``k``, else 0 (one relevant item)."""
    gain = 1.0 / torch.log2(ranks.to(torch.float64) + 1.0)
    return torch.where(ranks <= k, gain, torch.zeros_like(gain))


def mrr(ranks: torch.Tensor, cutoff: int | None = None) -> torch.Tensor:
    """``[B]`` float reciprocal rank.

    With ``cutoff`` the HSTU code's reading: it keeps the top ``cutoff`` (2,500) items and
    gives a target outside them rank ``cutoff + 1``.
    """
    r = ranks.to(torch.float64)
    if cutoff is not None:
        r = r.clamp(max=cutoff + 1)
    return 1.0 / r


def rank_metrics(
    ranks: torch.Tensor, ks: Iterable[int] = DEFAULT_KS, mrr_cutoff: int | None = None
) -> dict[str, torch.Tensor]:
    """Per-user values of ``hr@k``, ``ndcg@k`` for each k, and ``mrr``."""
    out: dict[str, torch.Tensor] = {}
    for k in sorted(set(ks)):
        out[f"hr@{k}"] = hit_rate(ranks, k)
        out[f"ndcg@{k}"] = ndcg(ranks, k)
    out["mrr"] = mrr(ranks, mrr_cutoff)
    return out


def metric_names(ks: Iterable[int] = DEFAULT_KS) -> list[str]:
    """The rank metrics :func:`rank_metrics` computes for cut-offs ``ks`` (higher is better);
    evaluation adds ``loss`` (lower is better)."""
    names = [f"{m}@{k}" for k in sorted(set(ks)) for m in ("hr", "ndcg")]
    return [*names, "mrr"]


@dataclass
class MetricSums:
    """Sums and counts per metric: the means of a union of shards are exact.

    Averages of per-rank averages are wrong when shards differ in size; summing
    ``(sum, count)`` pairs across ranks and dividing once is not.
    """

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)

    def declare(self, names: Iterable[str]) -> MetricSums:
        """Make ``names`` present with zero sums, so a rank with no users still reduces alike."""
        for name in names:
            self.sums.setdefault(name, 0.0)
            self.counts.setdefault(name, 0.0)
        return self

    def add(self, name: str, values: torch.Tensor | float, count: int | None = None) -> None:
        """Add per-user values (a tensor, summed here) or a pre-summed float with its count."""
        if isinstance(values, torch.Tensor):
            total = float(values.detach().to(torch.float64).sum())
            n = values.numel() if count is None else count
        else:
            if count is None:
                raise ValueError("a pre-summed value needs its count")
            total, n = float(values), count
        self.sums[name] = self.sums.get(name, 0.0) + total
        self.counts[name] = self.counts.get(name, 0.0) + n

    def add_ranks(
        self, ranks: torch.Tensor, ks: Iterable[int] = DEFAULT_KS, mrr_cutoff: int | None = None
    ) -> None:
        for name, values in rank_metrics(ranks, ks, mrr_cutoff).items():
            self.add(name, values)

    def merge(self, other: MetricSums) -> MetricSums:
        """In-place sum with ``other``; returns self."""
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0.0) + other.counts[name]
        return self

    def to_dict(self) -> dict[str, float]:
        """Means per metric (NaN for a metric with count 0)."""
        return {
            name: (self.sums[name] / self.counts[name]) if self.counts[name] else math.nan
            for name in sorted(self.sums)
        }

    def all_reduce(self, device: torch.device | str | None = None) -> MetricSums:
        """Sum across the ranks of the default process group, in place; a no-op without one.

        Every rank must hold the same metric names (evaluate with the same ``ks``). The
        reduction runs on ``device``, or on the current CUDA device under NCCL, else CPU.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        if device is None:
            nccl = dist.get_backend() == "nccl"
            device = torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu"
        names = sorted(self.sums)
        flat = torch.tensor(
            [self.sums[n] for n in names] + [self.counts[n] for n in names],
            dtype=torch.float64,
            device=device,
        )
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        values = flat.cpu().tolist()
        self.sums = dict(zip(names, values[: len(names)], strict=True))
        self.counts = dict(zip(names, values[len(names) :], strict=True))
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> MetricSums:
        """Inverse of :meth:`state`, for saving partial results."""
        return cls(dict(data["sums"]), dict(data["counts"]))

    def state(self) -> dict[str, dict[str, float]]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}
