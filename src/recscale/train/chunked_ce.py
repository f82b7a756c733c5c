"""Full-softmax cross-entropy without the ``[M, I]`` logit matrix.

``chunked_cross_entropy(query, items, targets, tau)`` equals
``F.cross_entropy(query @ items.T / tau, targets, reduction="sum")`` (the reference,
:func:`cross_entropy_reference`) but scores ``rows`` positions at a time against the whole
catalogue in one reused buffer, so memory is ``rows x I`` floats, not ``M x I``.

When gradients are wanted, each chunk's gradients are computed in the forward pass while
its logits are still in the buffer (``dL/ds = softmax(s) - onehot(target)``), the way
Liger-Kernel's fused linear cross-entropy does it: three matmuls per chunk, as many as the
plain path (logits, ``dQ``, ``dI``), no recomputation, and no ``[M, I]`` allocation per
step (on a CPU, glibc hands such buffers back to the kernel and faults them in again on
every step). Backward only scales the saved gradients by the incoming one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recscale.numerics import shifted_exp_

# Rows per chunk: the buffer holds about this many bytes, but at least MIN_ROWS rows so
# each chunk's matmuls still reuse every item vector (below ~32 rows they read the item
# table from memory at every chunk).
CHUNK_BYTES = 8 * 2**20
MIN_ROWS = 64


def cross_entropy_reference(
    query: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, tau: float
) -> torch.Tensor:
    """``query [M, D]``, ``items [I, D]``, ``targets [M]`` in ``0..I-1`` -> summed CE."""
    return F.cross_entropy(query @ items.T / tau, targets, reduction="sum")


def chunk_rows(num_items: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Positions per chunk for a catalogue of ``num_items`` (fp32 buffer of ``chunk_bytes``)."""
    return max(MIN_ROWS, chunk_bytes // (4 * max(num_items, 1)))


def chunked_cross_entropy(
    query: torch.Tensor,
    items: torch.Tensor,
    targets: torch.Tensor,
    tau: float,
    rows: int | None = None,
) -> torch.Tensor:
    """Summed ``-log softmax(query @ items.T / tau)[target]`` over the ``M`` positions.

    Args:
        query: [M, D] query vectors (fp32).
        items: [I, D] class vectors (fp32); classes are the rows.
        targets: [M] long, the true class of each position, in ``0..I-1``.
        tau: temperature; logits are divided by it.
        rows: positions per chunk (default: :func:`chunk_rows`).

    Returns:
        A 0-dim tensor; differentiable in ``query`` and ``items``.
    """
    return _apply(query, items, None, tau, rows, targets=targets)


def shared_sampled_cross_entropy(
    query: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    tau: float,
    bias: torch.Tensor | float | None = None,
    positive_ids: torch.Tensor | None = None,
    negative_ids: torch.Tensor | None = None,
    rows: int | None = None,
) -> torch.Tensor:
    """Sampled softmax with one set of ``K`` negatives shared by all ``M`` positions:

    ``sum_m -s_m+ + log(exp(s_m+) + sum_j [neg_j != pos_m] exp(s_mj + bias_j))`` with
    ``s_m+ = query_m . positive_m / tau`` and ``s_mj = query_m . negatives_j / tau``.

    Args:
        query: [M, D]; positive: [M, D] each position's positive vector.
        negatives: [K, D] the shared negatives' vectors.
        bias: [K] or a scalar added to every negative logit (a logQ correction), or None.
        positive_ids, negative_ids: [M] and [K] item ids; a negative equal to the
            position's positive (an accidental hit) is left out. None: no check.
        rows: positions per chunk (default: :func:`chunk_rows` of ``K``).

    Returns:
        A 0-dim tensor; differentiable in ``query``, ``positive`` and ``negatives``.
    """
    hits = None if positive_ids is None else matches(positive_ids, negative_ids)
    return _apply(query, negatives, positive, tau, rows, bias=bias, hits=hits)


def matches(row_ids: torch.Tensor, column_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(m, j)`` with ``row_ids[m] == column_ids[j]``, rows ascending, without the
    ``[M, K]`` comparison (accidental hits are rare: about ``M K / I``)."""
    sorted_ids, perm = torch.sort(column_ids)
    lo = torch.searchsorted(sorted_ids, row_ids, side="left")
    n = torch.searchsorted(sorted_ids, row_ids, side="right") - lo  # matches per row
    some = n.nonzero().squeeze(1)  # few rows: repeat_interleave over all M rows is slow
    rows = some.repeat_interleave(n[some])
    first = torch.cumsum(n, 0) - n  # where each row's matches begin in the flat list
    rank = torch.arange(len(rows), device=rows.device) - first[rows]
    return rows, perm[lo[rows] + rank]


def _apply(query, classes, positive, tau, rows, **kw):
    rows = rows or chunk_rows(classes.shape[0])
    inputs = [t for t in (query, classes, positive) if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return _FusedCE.apply(query, classes, positive, float(tau), rows, kw)
    with torch.no_grad():
        return _forward(query, classes, positive, float(tau), rows, grads=False, **kw)[0]


def _forward(
    query: torch.Tensor,
    classes: torch.Tensor,
    positive: torch.Tensor | None,
    tau: float,
    rows: int,
    grads: bool,
    targets: torch.Tensor | None = None,
    bias: torch.Tensor | float | None = None,
    hits: tuple[torch.Tensor, torch.Tensor] | None = None,  # (rows, columns) set to -inf
):
    """Loss sum and, with ``grads``, the gradients w.r.t. query, classes and positive.

    The true class of row m is ``classes[targets[m]]`` when ``positive`` is None, else the
    extra column ``positive[m]`` (not among ``classes``).
    """
    m, n = query.shape[0], classes.shape[0]
    qs = query / tau  # folding 1/tau into the query saves a pass over each chunk
    total = torch.zeros((), dtype=torch.float64, device=query.device)
    grad_q = torch.empty_like(qs) if grads else None
    grad_classes = torch.zeros_like(classes) if grads else None
    grad_pos = torch.empty_like(positive) if grads and positive is not None else None
    buffer = torch.empty(min(rows, m) * n, dtype=qs.dtype, device=qs.device)
    classes_t = classes.T
    for start in range(0, m, rows):
        chunk = slice(start, start + rows)
        q = qs[chunk]
        c = q.shape[0]
        s = torch.mm(q, classes_t, out=buffer[: c * n].view(c, n))  # [c, n]
        if bias is not None:
            s.add_(bias)
        if hits is not None:
            bounds = torch.tensor([start, start + c], device=hits[0].device)
            lo, hi = torch.searchsorted(hits[0], bounds).tolist()
            s[hits[0][lo:hi] - start, hits[1][lo:hi]] = -torch.inf
        if positive is None:
            t = targets[chunk]
            true_logit = s.gather(1, t.unsqueeze(1)).squeeze(1)
            peak = s.amax(1)
        else:
            true_logit = (q * positive[chunk]).sum(1)
            peak = torch.maximum(s.amax(1), true_logit)
        # In place: the buffer now holds exp(s - max), floored clear of exp's slow path.
        e = shifted_exp_(s, peak.unsqueeze(1))
        z = e.sum(1)
        if positive is not None:
            e_true = (true_logit - peak).exp()
            z = z + e_true
        total += (peak + z.log() - true_logit).sum(dtype=torch.float64)
        if not grads:
            continue
        # dL/ds = e / z - onehot(true); 1/z is applied to the [c, D] factors, not to e.
        z = z.unsqueeze(1)
        gq = torch.mm(e, classes, out=grad_q[chunk]).div_(z)
        grad_classes.addmm_(e.T, q / z)
        if positive is None:
            gq.sub_(classes[t])
            grad_classes.index_add_(0, t, q, alpha=-1.0)
        else:
            g_true = e_true.unsqueeze(1) / z - 1.0  # [c, 1]
            gq.add_(g_true * positive[chunk])
            grad_pos[chunk] = g_true * q
    loss = total.to(query.dtype)
    if grads:
        grad_q = grad_q / tau  # d(qs)/d(query) = 1/tau
    return loss, grad_q, grad_classes, grad_pos


class _FusedCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, classes, positive, tau, rows, kw):
        with torch.autocast(query.device.type, enabled=False), torch.no_grad():
            loss, *grads = _forward(query, classes, positive, tau, rows, grads=True, **kw)
        ctx.save_for_backward(*grads[:2], *grads[2:] if positive is not None else ())
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grads = [g * grad_loss for g in ctx.saved_tensors]
        grad_pos = grads[2] if len(grads) == 3 else None
        return grads[0], grads[1], grad_pos, None, None, None
