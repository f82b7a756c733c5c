"""HSTU eq. (2), ``AV = (SiLU(Q K^T + rab) / n  *  causal_mask) V``, two ways.

``silu_attention_reference`` is the plain expression: autograd saves the [B, H, N, N]
scores and makes one pass over them per elementwise op, forward and backward.

``silu_attention`` computes the same values and gradients in tiles: a block of query rows
against only the keys it can see (the causal triangle; with N = 200 and 64-row blocks
35% of the score matrix is never computed), for a slice of the batch small enough that a
tile stays in cache while its bias add, SiLU and mask run over it. The backward recomputes
each tile from q, k, v and the bias instead of saving [B, H, N, N] intermediates.
Under autocast it runs in the autocast dtype (bias and its gradient stay in theirs).

Shapes: ``B`` batch, ``H`` heads, ``N`` length, ``Dqk`` / ``Dv`` per-head widths. Padded
positions need no mask of their own: with right padding, causality keeps them out of every
real query's row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Query rows per tile. 64 skips most of the masked triangle while each product stays a
# reasonable matmul on a CPU.
QUERY_BLOCK = 64
# Score elements per tile on a CPU (fp32: 1 MiB, a core's L2 on the machines here). On
# CUDA a tile spans the whole batch: fewer, larger kernels.
CPU_TILE_ELEMENTS = 1 << 18


def silu_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    weight: torch.Tensor,
) -> torch.Tensor:
    """The plain expression. weight: [N, N] causal mask times the 1/n scale.

    q, k: [B, H, N, Dqk]; v: [B, H, N, Dv]; bias: [B | 1, N, N] or None -> [B, H, N, Dv].
    """
    scores = q @ k.transpose(-1, -2)  # [B, H, N, N]
    if bias is not None:
        scores = scores + bias.unsqueeze(1)
    return (F.silu(scores) * weight.to(scores.dtype)) @ v


def silu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    query_block: int = QUERY_BLOCK,
    tile_elements: int | None = None,
    key_starts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Tiled causal SiLU attention, equal to the reference with ``weight = tril * scale``.

    q, k: [B, H, N, Dqk]; v: [B, H, N, Dv]; bias: [B | 1, N, N] or None (shared across
    heads); scale: the 1/n factor (1.0 for none) -> [B, H, N, Dv]. ``tile_elements`` bounds
    the scores held at once (default: cache-sized on a CPU, the whole batch elsewhere).
    ``key_starts`` [B, N] int64, nondecreasing along N: query i sees no key before
    ``key_starts[:, i]`` (in packed rows, its user's first position), so a tile skips the keys
    no query of it sees; the caller's bias must mask the rest.
    """
    device = q.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    if tile_elements is None:
        tile_elements = CPU_TILE_ELEMENTS if device == "cpu" else 0
    with torch.autocast(device, enabled=False):
        return _SiLUAttention.apply(q, k, v, bias, scale, query_block, tile_elements, key_starts)


def _tiles(
    batch: int,
    heads: int,
    n: int,
    query_block: int,
    tile_elements: int,
    key_starts: torch.Tensor | None,
) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
    """Batch slices [b0, b1), each with the query-row blocks [r0, r1) that cover the
    triangle and the first key c0 any query of the block sees there."""
    starts = range(0, n, query_block)
    per_tile = max(1, tile_elements // (heads * query_block * n)) if tile_elements else batch
    tiles = []
    for b0 in range(0, batch, per_tile):
        b1 = min(b0 + per_tile, batch)
        first = [0] * len(starts)
        if key_starts is not None:  # one host sync per batch slice
            first = key_starts[b0:b1, list(starts)].amin(0).tolist()
        blocks = [(r0, min(r0 + query_block, n), c0) for r0, c0 in zip(starts, first, strict=True)]
        tiles.append((b0, b1, blocks))
    return tiles


class _SiLUAttention(torch.autograd.Function):
    """Forward and backward over tiles; saves only q, k, v (as given) and the bias.

    Each batch slice is copied to contiguous [bh, N, D] buffers (in cache, when q, k, v are
    the strided head views of one projection), and results go out in [B, N, H, D] memory,
    so the caller's transpose back to [B, N, H·D] is free.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, scale, query_block, tile_elements, key_starts):
        batch, heads, n, _ = q.shape
        out = _heads_last(v)
        tiles = _tiles(batch, heads, n, query_block, tile_elements, key_starts)
        for b0, b1, blocks in tiles:
            qc, kc, vc = (_flat(t, b0, b1) for t in (q, k, v))
            bc = _bias_rows(bias, b0, b1)
            oc = torch.empty_like(vc)
            for r0, r1, c0 in blocks:
                a = F.silu(_scores(qc, kc, bc, heads, r0, r1, c0), inplace=True)
                a[:, :, r0 - c0 :].tril_()  # the causal mask: only the diagonal tile has one
                torch.bmm(a, vc[:, c0:r1], out=oc[:, r0:r1])
            out[b0:b1] = oc.mul_(scale).unflatten(0, (b1 - b0, heads))
        ctx.save_for_backward(q, k, v, bias)
        ctx.tiles, ctx.scale = tiles, scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v, bias = ctx.saved_tensors
        heads, n = q.shape[1], q.shape[2]
        dq, dk, dv = _heads_last(q), _heads_last(k), _heads_last(v)
        need_bias = bias is not None and ctx.needs_input_grad[3]
        dbias = torch.zeros_like(bias) if need_bias else None
        for b0, b1, blocks in ctx.tiles:
            qc, kc, vc = (_flat(t, b0, b1) for t in (q, k, v))
            gc = _flat(grad_out, b0, b1).to(q.dtype) * ctx.scale
            bc = _bias_rows(bias, b0, b1)
            dqc, dkc, dvc = torch.empty_like(qc), torch.empty_like(kc), torch.empty_like(vc)
            # The last row block sees every key (from its c0 on): it writes dk, dv; earlier
            # blocks add to them.
            for r0, r1, c0 in reversed(blocks):
                s = _scores(qc, kc, bc, heads, r0, r1, c0)
                g_rows = gc[:, r0:r1]
                da = torch.bmm(g_rows, vc[:, c0:r1].transpose(1, 2))  # dL/dA: [bh, rows, keys]
                a = F.silu(s)
                a[:, :, r0 - c0 :].tril_()
                ds = torch.ops.aten.silu_backward(da, s)
                ds[:, :, r0 - c0 :].tril_()
                torch.bmm(ds, kc[:, c0:r1], out=dqc[:, r0:r1])
                if r1 == n and c0 == 0:
                    torch.bmm(a.transpose(1, 2), g_rows, out=dvc)
                    torch.bmm(ds.transpose(1, 2), qc[:, r0:r1], out=dkc)
                else:
                    if r1 == n:
                        dvc.zero_()
                        dkc.zero_()
                    dvc[:, c0:r1] += torch.bmm(a.transpose(1, 2), g_rows)
                    dkc[:, c0:r1] += torch.bmm(ds.transpose(1, 2), qc[:, r0:r1])
                if dbias is not None:
                    per_head = ds.view(b1 - b0, heads, r1 - r0, r1 - c0)
                    if bias.shape[0] == 1:
                        dbias[0, r0:r1, c0:r1] += per_head.sum((0, 1))
                    else:
                        dbias[b0:b1, r0:r1, c0:r1] += per_head.sum(1)
            for grad, chunk in ((dq, dqc), (dk, dkc), (dv, dvc)):
                grad[b0:b1] = chunk.unflatten(0, (b1 - b0, heads))
        return dq, dk, dv, dbias, None, None, None, None


def _flat(t: torch.Tensor, b0: int, b1: int) -> torch.Tensor:
    """[B, H, N, D] -> rows [b0, b1) as [(b1 - b0)·H, N, D] (a copy unless contiguous)."""
    return t[b0:b1].reshape(-1, *t.shape[2:])


def _heads_last(like: torch.Tensor) -> torch.Tensor:
    """An empty [B, H, N, D] tensor laid out in memory as [B, N, H, D]."""
    b, h, n, d = like.shape
    return torch.empty(b, n, h, d, dtype=like.dtype, device=like.device).transpose(1, 2)


def _bias_rows(bias: torch.Tensor | None, b0: int, b1: int) -> torch.Tensor | None:
    """The bias of batch slice [b0, b1): [b1 - b0 | 1, N, N]."""
    if bias is None:
        return None
    return bias[0:1] if bias.shape[0] == 1 else bias[b0:b1]


def _scores(q, k, bias, heads, r0, r1, c0) -> torch.Tensor:
    """Q K^T + rab for query rows [r0, r1) against keys [c0, r1).

    q, k: [bh, N, Dqk] for a batch slice of bh / heads sequences; bias: [bh / heads | 1, N, N]
    or None -> [bh, r1 - r0, r1 - c0].
    """
    s = torch.bmm(q[:, r0:r1], k[:, c0:r1].transpose(1, 2))
    if bias is not None:
        s.view(-1, heads, r1 - r0, r1 - c0).add_(bias[:, None, r0:r1, c0:r1])
    return s
