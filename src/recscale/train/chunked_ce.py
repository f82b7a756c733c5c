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
    rows = rows or chunk_rows(items.shape[0])
    if torch.is_grad_enabled() and (query.requires_grad or items.requires_grad):
        return _FusedChunkedCE.apply(query, items, targets, float(tau), rows)
    with torch.no_grad():
        return _forward(query, items, targets, float(tau), rows, grads=False)[0]


def _forward(
    query: torch.Tensor,
    items: torch.Tensor,
    targets: torch.Tensor,
    tau: float,
    rows: int,
    grads: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Loss sum and, with ``grads``, ``dL/dquery [M, D]`` and ``dL/ditems [I, D]``."""
    m, num_items = query.shape[0], items.shape[0]
    qs = query / tau  # folding 1/tau into the query saves a pass over each chunk
    total = torch.zeros((), dtype=torch.float64, device=query.device)
    grad_q = torch.empty_like(qs) if grads else None
    grad_items = torch.zeros_like(items) if grads else None
    buffer = torch.empty(min(rows, m) * num_items, dtype=qs.dtype, device=qs.device)
    items_t = items.T
    for start in range(0, m, rows):
        q = qs[start : start + rows]
        t = targets[start : start + rows]
        c = q.shape[0]
        s = torch.mm(q, items_t, out=buffer[: c * num_items].view(c, num_items))  # [c, I]
        target_logit = s.gather(1, t.unsqueeze(1)).squeeze(1)
        peak = s.amax(1, keepdim=True)
        e = s.sub_(peak).exp_()  # in place: the buffer now holds exp(s - max)
        z = e.sum(1, keepdim=True)
        lse = peak.squeeze(1) + z.log().squeeze(1)
        total += (lse - target_logit).sum(dtype=torch.float64)
        if grads:
            # dL/ds = e / z - onehot(t); 1/z is applied to the [c, D] factors, not to e.
            gq = torch.mm(e, items, out=grad_q[start : start + c])
            gq.div_(z).sub_(items[t])
            grad_items.addmm_(e.T, q / z)
            grad_items.index_add_(0, t, q, alpha=-1.0)
    loss = total.to(query.dtype)
    if grads:
        grad_q = grad_q / tau  # d(qs)/d(query) = 1/tau
    return loss, grad_q, grad_items


class _FusedChunkedCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, items, targets, tau, rows):
        with torch.autocast(query.device.type, enabled=False), torch.no_grad():
            loss, grad_q, grad_items = _forward(query, items, targets, tau, rows, grads=True)
        ctx.save_for_backward(grad_q, grad_items)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad_q, grad_items = ctx.saved_tensors
        return grad_q * grad_loss, grad_items * grad_loss, None, None, None
