"""Scoring sampled negatives: the kernels behind ``sampled_softmax``.

Three ways to share negatives, from most to least work per position:

- per position ``[M, K]`` (the HSTU code): :func:`gathered_dot` scores each position against
  its own ``K`` rows, ``M`` positions at a time in one reused buffer, and in backward
  gathers the rows again instead of keeping ``[M, K, D]`` (about 9x faster than
  embedding + einsum at 18K items, K=256, d=64, where gathering and scatter-adding
  ``M x K`` rows is the cost);
- per sequence ``[B, K]``: :func:`per_sequence_logits`, a few batched matmuls over the rows
  of the batch (``B x K`` gathered rows instead of ``M x K``);
- per batch ``[K]``: one ``[M, D] x [D, K]`` matmul
  (:func:`~recscale.train.chunked_ce.shared_sampled_cross_entropy`).

The functions that take a ``model`` read only ``num_items``, ``item_vectors(ids)`` and
``item_vectors()`` (all rows), and rely on ``item_vectors()[ids] == item_vectors(ids)``.

Each is checked against a plain PyTorch reference in ``tests/train/test_sampled.py``.
"""

from __future__ import annotations

import torch

from recscale.models.contract import Recommender

# Rows gathered per chunk of gathered_dot: at K=256, d=64 one chunk is 4 MiB (fits in L2/L3).
GATHER_CHUNK = 64


def gathered_dot(
    query: torch.Tensor, table: torch.Tensor, ids: torch.Tensor, rows: int = GATHER_CHUNK
) -> torch.Tensor:
    """``out[m, k] = query[m] . table[ids[m, k]]``.

    Args:
        query: [M, D].
        table: [I, D] (all item vectors, already scored-ready: normalised where the model
            normalises).
        ids: [M, K] long row ids into ``table``.
        rows: positions per chunk.

    Returns:
        [M, K], differentiable in ``query`` and ``table``; equal to
        ``torch.einsum("md,mkd->mk", query, table[ids])`` (tested).
    """
    return _GatherDot.apply(query, table, ids, rows)


class _GatherDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, table, ids, rows):
        m, k = ids.shape
        out = torch.empty(m, k, dtype=query.dtype, device=query.device)
        buffer = table.new_empty(min(rows, m) * k, table.shape[1])
        for start in range(0, m, rows):
            c = min(rows, m - start)
            flat = ids[start : start + c].reshape(-1)
            vectors = torch.index_select(table, 0, flat, out=buffer[: c * k]).view(c, k, -1)
            q = query[start : start + c].unsqueeze(2)
            torch.bmm(vectors, q, out=out[start : start + c, :, None])
        ctx.save_for_backward(query, table, ids)
        ctx.rows = rows
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, table, ids = ctx.saved_tensors
        rows = ctx.rows
        m, k = ids.shape
        d = table.shape[1]
        grad_out = grad_out.contiguous()
        grad_query = torch.empty_like(query) if ctx.needs_input_grad[0] else None
        grad_table = torch.zeros_like(table) if ctx.needs_input_grad[1] else None
        buffer = table.new_empty(min(rows, m) * k, d)
        for start in range(0, m, rows):
            c = min(rows, m - start)
            flat = ids[start : start + c].reshape(-1)
            g = grad_out[start : start + c]  # [c, K]
            if grad_query is not None:
                vectors = torch.index_select(table, 0, flat, out=buffer[: c * k]).view(c, k, d)
                torch.bmm(g.unsqueeze(1), vectors, out=grad_query[start : start + c, None, :])
            if grad_table is not None:
                # d out[m, k] / d table[ids[m, k]] = query[m]: scatter-add g[m, k] * query[m].
                rows_grad = buffer[: c * k].view(c, k, d)
                torch.mul(g.unsqueeze(2), query[start : start + c].unsqueeze(1), out=rows_grad)
                grad_table.index_add_(0, flat, rows_grad.view(-1, d))
        return grad_query, grad_table, None, None


def per_sequence_logits(
    query: torch.Tensor, negatives: torch.Tensor, mask: torch.Tensor, groups: int = 8
) -> torch.Tensor:
    """Each position against the negatives of its own sequence.

    Args:
        query: [M, D] query vectors of the positions where ``mask`` is true (row-major order).
        negatives: [B, K, D] item vectors of each sequence's negatives.
        mask: [B, N] bool, the target positions.
        groups: rows are sorted by their number of positions and cut into this many
            groups, each scored by one batched matmul padded to its own longest row (on
            Amazon-like data, mean length 8 in batches padded to ~40, this does ~1.4x the
            needed multiply-adds instead of ~5x for the whole padded batch).

    Returns:
        [M, K]: ``out[m, k] = query[m] . negatives[row(m), k]``.
    """
    (m, d), k = query.shape, negatives.shape[1]
    counts = mask.sum(1)
    starts = torch.cumsum(counts, 0) - counts  # where each row's positions begin in [M]
    order = torch.argsort(counts)
    groups_rows = [r for r in order.tensor_split(groups) if len(r)]
    # One gather and one split per input (not one gather per group): their backward is a
    # single index_add, where per-group gathers would each zero-fill a full-size gradient.
    negs = negatives.index_select(0, torch.cat(groups_rows)).split([len(r) for r in groups_rows])
    slots, valid, shapes = [], [], []
    for rows in groups_rows:
        length = int(counts[rows].max())
        offsets = torch.arange(length, device=mask.device)
        ok = (offsets < counts[rows, None]).view(-1)
        slots.append((starts[rows, None] + offsets).view(-1).masked_fill(~ok, 0))
        valid.append(ok)
        shapes.append((len(rows), length))
    flat_slots = torch.cat(slots)
    q_all = query.index_select(0, flat_slots)  # padding slots read row 0 and are dropped
    scores = []
    with torch.autocast(query.device.type, enabled=False):  # logits in fp32, as documented
        for q, v, (g, length) in zip(
            q_all.split([g * n for g, n in shapes]), negs, shapes, strict=True
        ):
            scores.append(torch.bmm(q.view(g, length, d), v.transpose(1, 2)).view(-1, k))
    keep = torch.cat(valid).nonzero().squeeze(1)  # slots that are real positions
    inverse = torch.empty_like(keep)
    inverse[flat_slots[keep]] = torch.arange(m, device=keep.device)
    return torch.cat(scores).index_select(0, keep[inverse])


def rows_of(mask: torch.Tensor) -> torch.Tensor:
    """[B, N] bool -> [M] long: the row of each true entry, in row-major order."""
    return torch.arange(mask.shape[0], device=mask.device).unsqueeze(1).expand_as(mask)[mask]


def num_items_of(model: Recommender) -> int:
    """Catalogue size from ``model.num_items``, else from the item table."""
    n = getattr(model, "num_items", None)
    if n is None:
        n = model.item_vectors().shape[0] - 1
    return int(n)


# Scoring the whole catalogue and gathering beats gathering M*K item vectors while the
# catalogue is at most this many times K (measured 2.7x faster at 3,416 items, K=128, d=64).
DENSE_GATHER_RATIO = 32
# Against gathered_dot the dense path wins only on smaller catalogues: at 3,416 items and
# K=128, d=64, gathered_dot took 0.21 s against 0.66 s (M=6,000) and 1.0 s against 9.9 s
# (M=25,600); at I/K = 13 both took 62 ms (1 thread, per step with backward). Gathering
# grows faster with d than the matmul does: at d=256 and I/K = 27 dense took 1.6 s against
# 1.4-2.0 s, at I/K = 47 0.65 s against 0.67 s.
FAST_DENSE_RATIO = 16


def fast_dense_ratio(dim: int) -> int:
    """Largest ``I / K`` at which :func:`per_position_logits_fast` scores densely."""
    return FAST_DENSE_RATIO * max(1, dim // 128)


def per_position_logits(
    model: Recommender, query: torch.Tensor, negatives: torch.Tensor, dense: bool | None = None
) -> torch.Tensor:
    """``query [M, D]`` against its own negatives ``[M, K]`` -> ``[M, K]`` dot products.

    ``dense=None`` picks the faster path; both give the same numbers (tested).
    """
    if dense is None:
        dense = num_items_of(model) <= DENSE_GATHER_RATIO * negatives.shape[1]
    if dense:
        return (query @ model.item_vectors().float().T).gather(1, negatives)
    return torch.einsum("md,mkd->mk", query, model.item_vectors(negatives).float())


def per_position_logits_fast(
    model: Recommender, query: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """:func:`per_position_logits` without the ``[M, K, D]`` tensor: item vectors are
    prepared once per distinct item (normalised once, not per gathered row) and gathered
    chunk by chunk."""
    num_items = num_items_of(model)
    if num_items <= fast_dense_ratio(query.shape[1]) * negatives.shape[1]:
        return per_position_logits(model, query, negatives, dense=True)
    if negatives.numel() >= num_items:
        return gathered_dot(query, model.item_vectors().float(), negatives)
    # Fewer draws than items (large catalogues): prepare only the drawn rows.
    distinct, index = torch.unique(negatives, return_inverse=True)
    return gathered_dot(query, model.item_vectors(distinct).float(), index)


def item_rows(model: Recommender, ids: torch.Tensor) -> torch.Tensor:
    """``model.item_vectors(ids)`` in fp32; with at least as many ids as items, the table
    is prepared once (normalised, side features added) and gathered, instead of per id."""
    if ids.numel() >= num_items_of(model):
        # index_select: its backward is one index_add, faster on a CPU than advanced
        # indexing's accumulating index_put.
        table = model.item_vectors().float()
        return table.index_select(0, ids.reshape(-1)).view(*ids.shape, -1)
    return model.item_vectors(ids).float()
