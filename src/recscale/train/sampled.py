"""Scoring sampled negatives: the kernels behind ``sampled_softmax``.

Three ways to share negatives, from most to least work per position:

- per position ``[M, K]`` (the HSTU code): :func:`gathered_dot` scores each position against
  its own ``K`` rows, ``M`` positions at a time in one reused buffer, and in backward
  gathers the rows again instead of keeping ``[M, K, D]`` (about 9x faster than
  embedding + einsum at 18K items, K=256, d=64, where gathering and scatter-adding
  ``M x K`` rows is the cost);
- per sequence ``[B, K]``: :func:`per_sequence_logits`, one batched matmul over the rows of
  the batch (``B x K`` gathered rows instead of ``M x K``);
- per batch ``[K]``: one ``[M, D] x [D, K]`` matmul (in ``losses.py``).

Each is checked against a plain PyTorch reference in ``tests/train/test_sampled.py``.
"""

from __future__ import annotations

import torch

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
    query: torch.Tensor, negatives: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Each position against the negatives of its own sequence.

    Args:
        query: [M, D] query vectors of the positions where ``mask`` is true (row-major order).
        negatives: [B, K, D] item vectors of each sequence's negatives.
        mask: [B, N] bool, the target positions.

    Returns:
        [M, K]: ``out[m, k] = query[m] . negatives[row(m), k]``.
    """
    b, n = mask.shape
    padded = query.new_zeros(b, n, query.shape[1])
    padded[mask] = query
    # Scoring the padded [B, N] grid costs N / mean length more multiply-adds than needed,
    # still far less than gathering [M, K, D] rows.
    return torch.bmm(padded, negatives.transpose(1, 2))[mask]


def rows_of(mask: torch.Tensor) -> torch.Tensor:
    """[B, N] bool -> [M] long: the row of each true entry, in row-major order."""
    return torch.arange(mask.shape[0], device=mask.device).unsqueeze(1).expand_as(mask)[mask]
