"""Pieces shared by the backbones: norms, rotary embeddings, causal attention, MLPs.

Shapes: ``B`` batch, ``N`` sequence length, ``D`` model width, ``H`` heads, ``Dh`` head width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from recscale.data.batching import Batch


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain (Llama)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., D] -> [..., D]."""
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def layer_norm(dim: int, affine: bool, bias: bool = True, eps: float = 1e-5) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=eps, elementwise_affine=affine, bias=affine and bias)


def rope_angles(
    n: int, head_dim: int, base: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin: [N, Dh/2] for positions 0..N-1 and frequencies base^(-2m/Dh)."""
    inv_freq = base ** (
        -torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    )
    angles = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs (x[2m], x[2m+1]) by position * freq_m (RoFormer).

    x: [B, H, N, Dh]; cos, sin: [N, Dh/2] (or per row, [B, 1, N, Dh/2]) -> [B, H, N, Dh].
    """
    pairs = x.float().unflatten(-1, (-1, 2))
    x1, x2 = pairs[..., 0], pairs[..., 1]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2).type_as(x)


# Added to a score the mask removes, where a kernel takes a bias but no mask: SiLU(-1e9) and
# its derivative are exactly 0 in fp32 and bf16, so such a key adds nothing to values or
# gradients (and exp(-1e9) is 0 for a softmax).
MASKED_SCORE = -1e9


@dataclass
class Attend:
    """Who attends to whom when the pattern is not plain causal (ranking, M-FALCON, packing).

    The new tokens' queries see the keys ``mask`` allows: the keys of ``past`` (one cached
    ``(k, v)`` per layer, in layer order) followed by the new tokens' own. Without ``past``
    the keys are the new tokens alone. ``positions`` are the new tokens' position ids (for
    position tables, RoPE and relative biases), ``key_positions`` those of every key. With
    ``store`` each layer appends its new ``(k, v)`` there, as a later call's ``past``.

    ``segments`` marks a packed batch (:func:`packed_attend`): the mask is then causal
    within each segment, so a backbone may take its causal fast path and add the segment
    boundaries to it.

    Shapes: mask [B, Tq, Tk] bool (True = may attend); positions [B, Tq]; key_positions
    [B, Tk] int64; Tk = past length + Tq; segments [B, Tq] int64.
    """

    mask: torch.Tensor
    positions: torch.Tensor
    key_positions: torch.Tensor
    past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    store: list[tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)
    segments: torch.Tensor | None = None

    def keys_values(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A layer's new k, v [B, H, Tq, Dh] -> every key and value it attends over."""
        if self.store is not None:
            self.store.append((k, v))
        if self.past is None:
            return k, v
        past_k, past_v = self.past[layer]
        return torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)

    @cached_property
    def offsets(self) -> torch.Tensor:
        """[B, Tq, Tk] key position − query position, shared by every layer's relative bias."""
        return self.key_positions[:, None, :] - self.positions[:, :, None]

    @cached_property
    def masked_bias(self) -> torch.Tensor:
        """[B, Tq, Tk] float32: 0 where the mask allows, ``MASKED_SCORE`` elsewhere."""
        zeros = torch.zeros(self.mask.shape, device=self.mask.device)
        return zeros.masked_fill_(~self.mask, MASKED_SCORE)

    @cached_property
    def first_keys(self) -> torch.Tensor:
        """[B, Tq] in a packed batch, the column where each query's segment starts (padding:
        its own), the first key it may see."""
        return torch.arange(self.positions.shape[1], device=self.positions.device) - self.positions


def packed_attend(segments: torch.Tensor, positions: torch.Tensor) -> Attend:
    """Causal attention within each segment of packed rows (``data.batching.Batch``).

    segments, positions: [B, N] int64 (segment 0 = padding, which attends to itself only,
    so that no query row is empty and nothing real sees it).
    """
    n = segments.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=segments.device).tril()
    mask = (segments[:, :, None] == segments[:, None, :]) & causal & (segments > 0)[:, :, None]
    mask |= torch.eye(n, dtype=torch.bool, device=segments.device)
    return Attend(mask, positions, positions, segments=segments)


def batch_attend(batch: Batch) -> Attend | None:
    """Who attends to whom in a training batch: each user to itself in a packed batch, else
    None (plain causal)."""
    if batch.segments is None:
        return None
    return packed_attend(batch.segments, batch.positions)


def rope_at(
    positions: torch.Tensor, head_dim: int, base: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin: [B, 1, T, Dh/2] for position ids [B, T] (``apply_rope`` broadcasts them)."""
    inv_freq = base ** (
        -torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    )
    angles = positions.float()[:, None, :, None] * inv_freq
    return angles.cos(), angles.sin()


def rows_at(x: torch.Tensor, last: torch.Tensor | None) -> torch.Tensor:
    """x [B, N, ...] -> [B, 1, ...], each row's entry at position ``last`` [B]; x itself when
    ``last`` is None (the final layer of ``Encoder.forward(..., last_only=True)``)."""
    if last is None:
        return x
    return x[torch.arange(len(last), device=x.device), last].unsqueeze(1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal softmax attention.

    ``forward(query_input, kv_input)`` lets SASRec use LayerNorm(x) as the query and x as
    keys/values, as its original code does.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        bias: bool,
        dropout: float,
        rope_base: float | None = None,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.dropout = dropout
        self.rope_base = rope_base
        self.q = nn.Linear(dim, dim, bias=bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        kv_input: torch.Tensor | None = None,
        attend: Attend | None = None,
        layer: int = 0,
        last: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, N, D] queries (and keys/values unless kv_input [B, N, D]) -> [B, N, D].

        Causal unless ``attend`` says otherwise (``layer`` picks this layer's cache there).
        ``last`` [B]: only the query at that position of each row, over its keys up to there
        -> [B, 1, D] (:func:`rows_at` of the full output).
        """
        if last is not None and attend is not None:
            raise ValueError("last takes plain causal rows, not an attend pattern")
        kv_input = x if kv_input is None else kv_input
        q = self.q(rows_at(x, last)).unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)
        k, v = (
            self.kv(kv_input).unflatten(-1, (2, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        )
        if self.rope_base is not None:
            if attend is None:
                cos, sin = rope_angles(x.shape[1], self.head_dim, self.rope_base, x.device)
            else:
                cos, sin = rope_at(attend.positions, self.head_dim, self.rope_base)
            if last is None:
                q = apply_rope(q, cos, sin)
            else:
                q = apply_rope(q, cos[last][:, None, None], sin[last][:, None, None])
            k = apply_rope(k, cos, sin)
        p = self.dropout if self.training else 0.0
        if last is not None:
            allowed = torch.arange(k.shape[2], device=k.device) <= last[:, None]  # [B, N]
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed[:, None, None], dropout_p=p
            )
        elif attend is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            k, v = attend.keys_values(layer, k, v)
            mask = attend.mask.unsqueeze(1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out(y.transpose(1, 2).flatten(-2))


class PointwiseFFN(nn.Module):
    """SASRec's point-wise FFN: drop(W2 drop(act(W1 x))), no residual."""

    def __init__(self, dim: int, hidden: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, dim)
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]."""
        return self.drop(self.w2(self.drop(self.act(self.w1(x)))))


class GeluMLP(nn.Module):
    """GPT-2 MLP: W2 GELU(W1 x), no residual."""

    def __init__(self, dim: int, hidden: int, bias: bool) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=bias)
        self.w2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]."""
        return self.w2(F.gelu(self.w1(x)))


class SwiGLU(nn.Module):
    """Llama MLP: W2 (SiLU(W1 x) * W3 x), bias-free, no residual."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]."""
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class AbsolutePositions(nn.Module):
    """Learned position table added to the inputs, then embedding dropout."""

    def __init__(self, max_len: int, dim: int, dropout: float, std: float | None) -> None:
        """``std``: truncated-normal (±2 std) init; None = xavier-normal, as RecTools inits
        every matrix."""
        super().__init__()
        self.table = nn.Embedding(max_len, dim)
        if std is None:
            nn.init.xavier_normal_(self.table.weight)
        else:
            nn.init.trunc_normal_(self.table.weight, std=std, a=-2 * std, b=2 * std)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]; positions [B, N] ids (default 0..N-1) below max_len."""
        n = (
            x.shape[1]
            if positions is None
            else int(positions.max()) + 1
            if positions.numel()
            else 0
        )
        if n > self.table.num_embeddings:
            raise ValueError(f"sequence length {n} exceeds max_len {self.table.num_embeddings}")
        if positions is None:
            return self.drop(x + self.table.weight[:n])
        return self.drop(x + self.table(positions))


def position_ids(
    from_last: bool, lengths: torch.Tensor, n: int, attend: Attend | None
) -> torch.Tensor | None:
    """[B, N] position ids for :class:`AbsolutePositions` (None: 0..N-1 in every row).

    Counted from each window's first item, or with ``from_last`` back from each user's most
    recent item (0 = the last), what RecTools' ``LearnableInversePositionalEncoding`` gives on
    its left-padded windows: ``lengths`` [B] for right-padded rows of width ``n``, or within
    each user of a packed batch's ``attend``; padding gets id 0 (its output is unused). Other
    attends (ranking candidates, M-FALCON's cached keys) have no last item to count from.
    """
    if not from_last:
        return None if attend is None else attend.positions
    if attend is None:
        index = lengths[:, None] - 1 - torch.arange(n, device=lengths.device)
    elif attend.segments is not None and attend.past is None:
        index = _segment_lengths(attend.segments) - 1 - attend.positions
    else:
        raise ValueError(
            "positions counted back from the last item take no attend but a packed batch's; "
            "ranking and M-FALCON need absolute positions"
        )
    return index.clamp(min=0)


def _segment_lengths(segments: torch.Tensor) -> torch.Tensor:
    """[B, N] segment ids -> [B, N] the length of each token's segment."""
    counts = torch.zeros(segments.shape[0], segments.shape[1] + 1, dtype=torch.int64)
    counts = counts.to(segments.device).scatter_add_(1, segments, torch.ones_like(segments))
    return counts.gather(1, segments)
