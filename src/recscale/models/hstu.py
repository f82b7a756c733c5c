"""HSTU (Zhai et al., ICML 2024, arXiv 2402.17152) as the official code computes it.

One layer (``residual="hstu"``)::

    U, V, Q, K = split(SiLU(f1(LayerNorm(X))))                   # eq. (1)
    AV = (SiLU(Q K^T + rab^{p,t}) / n  *  causal_mask) V          # eq. (2)
    Y  = X + f2(dropout(LayerNorm(AV) * U))                       # eq. (3)

Details taken from generative-recommenders ``research/modeling/sequential/hstu.py``: the
LayerNorms have no gain/bias (eps 1e-6), f1 has no bias, f2 has one; n is the padded
maximum length (here ``max_len``, so outputs do not depend on a batch's padding); rab is
a learned bias over 2·max_len−1 position offsets plus a learned bias over log-bucketed
time gaps, one table per layer, shared across heads; the query at position i carries the
timestamp of item i+1 (the time of the item being predicted) and keys their own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recscale.models.attention import (
    AbsolutePositions,
    Attend,
    RMSNorm,
    SwiGLU,
    apply_rope,
    rope_angles,
    rope_at,
    rows_at,
)
from recscale.models.config import ModelConfig
from recscale.models.encoder import ENCODERS, Encoder, final_layer_rows
from recscale.models.hstu_attention import silu_attention, silu_attention_reference


def time_buckets(dt: torch.Tensor, num_buckets: int = 128, divisor: float = 0.301) -> torch.Tensor:
    """floor(ln(max(|dt|, 1)) / divisor) clamped to [0, num_buckets].

    dt: int64 time gaps (any shape) -> int64 bucket ids, same shape.
    """
    # float32 like the official code; in place after the first copy (this runs on [B, N, N]).
    logs = dt.abs().float().clamp_(min=1.0).log_().div_(divisor)
    return logs.long().clamp_(0, num_buckets)


def query_timestamps(timestamps: torch.Tensor, has_next: torch.Tensor) -> torch.Tensor:
    """Time of each query: item i+1's timestamp where it is the same user's next item
    (``has_next``), else item i's own.

    timestamps: [B, N]; has_next: [B, N] bool -> [B, N] (the official code's
    ``ext_timestamps``).
    """
    following = torch.cat([timestamps[:, 1:], timestamps[:, -1:]], dim=1)
    return torch.where(has_next, following, timestamps)


def relative_positions(n: int, max_len: int, device: torch.device) -> torch.Tensor:
    """[N, N] index into rab's position table: key − query + max_len − 1."""
    idx = torch.arange(n, device=device)
    return idx[None, :] - idx[:, None] + max_len - 1


class RelativeAttentionBias(nn.Module):
    """rab^{p,t}: [B | 1, N, N] bias shared across heads.

    Attributes:
        pos_w: [2·max_len − 1], indexed by key − query + max_len − 1.
        time_w: [num_buckets + 1], indexed by the bucket of t_query − t_key (when used).
    """

    def __init__(self, max_len: int, num_buckets: int | None) -> None:
        super().__init__()
        self.max_len = max_len
        self.pos_w = nn.Parameter(torch.empty(2 * max_len - 1).normal_(std=0.02))
        self.time_w = (
            nn.Parameter(torch.empty(num_buckets + 1).normal_(std=0.02))
            if num_buckets is not None
            else None
        )

    def forward(self, pos_index: torch.Tensor, buckets: torch.Tensor | None) -> torch.Tensor:
        """pos_index: [N, N]; buckets: [B, N, N] or None -> [B | 1, N, N]."""
        bias = self.pos_w[pos_index].unsqueeze(0)
        if buckets is not None and self.time_w is not None:
            bias = bias + self.time_w[buckets]
        return bias


class HSTULayer(nn.Module):
    """One HSTU block (or, with ``residual="llama"``, an HSTU attention sublayer + SwiGLU)."""

    def __init__(self, cfg: ModelConfig, dropout: float) -> None:
        super().__init__()
        opts = cfg.hstu
        d, h = cfg.dim, cfg.heads
        self.heads, self.dqk, self.dv = h, cfg.head_qk_dim, cfg.head_v_dim
        self.opts = opts
        self.u_width = h * self.dv if opts.u_gate else 0
        self.f1 = nn.Linear(d, self.u_width + h * self.dv + 2 * h * self.dqk, bias=False)
        self.f2 = nn.Linear(h * self.dv, d)
        nn.init.normal_(self.f1.weight, std=0.02)
        nn.init.xavier_uniform_(self.f2.weight)
        self.drop = nn.Dropout(dropout)
        self.attn_scale = 1.0 / cfg.max_len if opts.scale_by_n else 1.0  # 1/n of eq. (2)
        self.rab = (
            RelativeAttentionBias(
                cfg.max_len, opts.num_time_buckets if opts.rab == "position_time" else None
            )
            if opts.rab != "none"
            else None
        )
        if opts.residual == "llama":
            self.norm1 = RMSNorm(d)
            self.norm2 = RMSNorm(d)
            self.ffn = SwiGLU(d, cfg.ffn_dim)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        silu_weight: torch.Tensor,
        pos_index: torch.Tensor | None,
        buckets: torch.Tensor | None,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        attend: Attend | None = None,
        layer: int = 0,
        last: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D], or [B, 1, D] with ``last``.

        mask: [N, N] bool, True where key <= query; silu_weight: [N, N] float, the mask
        divided by n when ``scale_by_n`` (one pass instead of a multiply and a divide).
        With ``attend`` those three are unused: its mask and positions rule (see
        :meth:`_attend_any`), and ``buckets`` are [B, Tq, Tk] when given.
        ``last`` [B]: compute only the query at that position of each row (its row of the
        full output), over all of the row's keys; evaluation needs no other.
        """
        llama = self.opts.residual == "llama"
        normed = self.norm1(x) if llama else F.layer_norm(x, x.shape[-1:], eps=1e-6)
        if last is not None:
            return self._last_query(x, normed, last, mask, silu_weight, pos_index, buckets, rope)
        h, dqk, dv = self.heads, self.dqk, self.dv
        u, v, q, k = torch.split(  # eq. (1)
            F.silu(self.f1(normed)), [self.u_width, h * dv, h * dqk, h * dqk], dim=-1
        )
        q, k, v = self._split_heads(q, k, v)
        if attend is not None:
            av = self._attend_any(q, k, v, attend, layer, buckets)
            return self._output(x, av, u, llama)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        bias = None
        if self.rab is not None and pos_index is not None:
            bias = self.rab(pos_index, buckets)  # [B | 1, N, N]
        if self.opts.attention == "silu":  # eq. (2): pointwise, no softmax
            if self.opts.attention_impl == "fused":
                av = silu_attention(q, k, v, bias, self.attn_scale)
            else:
                av = silu_attention_reference(q, k, v, bias, silu_weight)
        else:
            scores = q @ k.transpose(-1, -2)  # [B, H, N, N]
            if bias is not None:
                scores = scores + bias.unsqueeze(1)
            scores = (scores / math.sqrt(dqk)).masked_fill(~mask, float("-inf"))
            av = torch.softmax(scores, dim=-1) @ v
        return self._output(x, av, u, llama)

    def _split_heads(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """q, k [B, T, H·Dqk], v [B, T, H·Dv] -> [B, H, T, Dqk], [B, H, T, Dqk], [B, H, T, Dv]."""
        q = q.unflatten(-1, (self.heads, self.dqk)).transpose(1, 2)
        k = k.unflatten(-1, (self.heads, self.dqk)).transpose(1, 2)
        return q, k, v.unflatten(-1, (self.heads, self.dv)).transpose(1, 2)

    def _last_query(
        self,
        x: torch.Tensor,
        normed: torch.Tensor,
        last: torch.Tensor,
        mask: torch.Tensor,
        silu_weight: torch.Tensor,
        pos_index: torch.Tensor | None,
        buckets: torch.Tensor | None,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Row ``last[b]`` of eqs. (1)-(3) for each row b: U and Q at that position only, V
        and K at every position, so f1 does half its work and the [B, H, N, N] scores shrink
        to [B, H, 1, N]. Written as the reference expression (at one query row the fused
        kernel has nothing to save)."""
        h, dqk, dv = self.heads, self.dqk, self.dv
        x, normed_last = rows_at(x, last), rows_at(normed, last)  # [B, 1, D]
        w_u, w_v, w_q, w_k = torch.split(self.f1.weight, [self.u_width, h * dv, h * dqk, h * dqk])
        u, q = torch.split(  # eq. (1), split by rows of f1 (SiLU is pointwise)
            F.silu(F.linear(normed_last, torch.cat([w_u, w_q]))), [self.u_width, h * dqk], -1
        )
        v, k = torch.split(F.silu(F.linear(normed, torch.cat([w_v, w_k]))), [h * dv, h * dqk], -1)
        q, k, v = self._split_heads(q, k, v)  # q: [B, H, 1, Dqk]
        if rope is not None:
            cos, sin = rope
            q = apply_rope(q, cos[last][:, None, None], sin[last][:, None, None])
            k = apply_rope(k, cos, sin)
        scores = q @ k.transpose(-1, -2)  # [B, H, 1, N]
        if self.rab is not None and pos_index is not None:
            bias = self.rab.pos_w[pos_index[last]]  # [B, N]
            if buckets is not None and self.rab.time_w is not None:
                bias = bias + self.rab.time_w[rows_at(buckets, last).squeeze(1)]
            scores = scores + bias[:, None, None]
        if self.opts.attention == "silu":
            weight = silu_weight[last][:, None, None].to(scores.dtype)
            av = (F.silu(scores) * weight) @ v
        else:
            allowed = mask[last][:, None, None]
            scores = (scores / math.sqrt(dqk)).masked_fill(~allowed, float("-inf"))
            av = torch.softmax(scores, dim=-1) @ v
        return self._output(x, av, u, self.opts.residual == "llama")

    def _output(self, x: torch.Tensor, av: torch.Tensor, u: torch.Tensor, llama: bool):
        av = av.transpose(1, 2).flatten(-2)  # [B, N, H·Dv]
        av = F.layer_norm(av, av.shape[-1:], eps=1e-6)
        y = x + self.f2(self.drop(av * u if self.opts.u_gate else av))  # eq. (3)
        if llama:
            y = y + self.drop(self.ffn(self.norm2(y)))
        return y

    def _attend_any(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attend: Attend,
        layer: int,
        buckets: torch.Tensor | None,
    ) -> torch.Tensor:
        """Eq. (2) under an arbitrary mask, over cached keys too, with the position bias read
        at key position − query position; time gaps (``buckets`` [B, Tq, Tk]) where the
        caller has them (packed batches; the ranking data carries none). A packed batch's
        mask is causal, so the fused kernel runs it with the segment boundaries in the bias."""
        if self.opts.rope:
            cos, sin = rope_at(attend.positions, self.dqk, self.opts.rope_base)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k, v = attend.keys_values(layer, k, v)
        bias = None
        if self.rab is not None and attend.segments is not None:
            # Within a segment key − query position is key − query column, so one shared
            # [1, N, N] table serves every row (its gradient a dense sum, not a B·N² scatter).
            n = attend.mask.shape[-1]
            bias = self.rab(relative_positions(n, self.rab.max_len, q.device), buckets)
        elif self.rab is not None:
            bias = self.rab.pos_w[attend.offsets + self.rab.max_len - 1]  # [B, Tq, Tk]
            if buckets is not None and self.rab.time_w is not None:
                bias = bias + self.rab.time_w[buckets]
        mask = attend.mask
        silu = self.opts.attention == "silu"
        if silu and self.opts.attention_impl == "fused" and attend.segments is not None:
            blocked = attend.masked_bias
            bias = blocked if bias is None else bias + blocked
            return silu_attention(q, k, v, bias, self.attn_scale, key_starts=attend.first_keys)
        scores = q @ k.transpose(-1, -2)  # [B, H, Tq, Tk]
        if bias is not None:
            scores = scores + bias.unsqueeze(1)
        mask = mask.unsqueeze(1)
        if silu:
            return (F.silu(scores) * mask.to(scores.dtype) * self.attn_scale) @ v
        scores = (scores / math.sqrt(self.dqk)).masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=-1) @ v


@ENCODERS.register("hstu")
class HSTU(Encoder):
    """Stack of HSTU layers over item·sqrt(D) + learned absolute positions."""

    supports_attend = True
    supports_last_only = True

    scale_inputs = True
    default_ffn_mult = 8.0 / 3.0  # SwiGLU sublayer of the "llama" residual ablation
    explicit_head_dims = True

    @staticmethod
    def uses_rope(cfg: ModelConfig) -> bool:
        return cfg.hstu.rope

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.opts = cfg.hstu
        self.dqk = cfg.head_qk_dim
        self.positions = AbsolutePositions(
            cfg.max_len, cfg.dim, cfg.emb_dropout, std=math.sqrt(1.0 / cfg.dim)
        )
        self.layers = nn.ModuleList(HSTULayer(cfg, p) for p in cfg.layer_dropouts())
        self.final_norm = RMSNorm(cfg.dim) if self.opts.residual == "llama" else None
        self.max_len = cfg.max_len

    def forward(
        self,
        x: torch.Tensor,
        timestamps: torch.Tensor | None,
        lengths: torch.Tensor,
        attend: Attend | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """x: [B, N, D] item vectors, timestamps: [B, N] | None, lengths: [B] -> [B, N, D],
        or with ``last_only`` [B, D] at each row's last real position, for which the final
        layer computes that one query per row."""
        opts = self.opts
        if last_only and attend is not None:
            raise ValueError("last_only takes plain causal rows, not an attend pattern")
        # Data without timestamps (ml-1m.txt, most S3-Rec files) simply gets the position bias:
        # nothing is wrong, so nothing is said.
        timed = opts.rab == "position_time" and timestamps is not None
        if attend is not None:
            buckets = None
            if timed and attend.segments is not None:
                has_next = attend.segments[:, 1:] == attend.segments[:, :-1]
                buckets = self._buckets(timestamps, F.pad(has_next, (0, 1)))
            x = self.positions(x, attend.positions)
            for i, layer in enumerate(self.layers):
                x = layer(x, None, None, None, buckets, None, attend, i)
            return x if self.final_norm is None else self.final_norm(x)
        x = self.positions(x)
        n = x.shape[1]
        buckets = None
        if timed:
            has_next = torch.arange(n, device=x.device)[None, :] + 1 < lengths[:, None]
            buckets = self._buckets(timestamps, has_next)
        pos_index = relative_positions(n, self.max_len, x.device) if opts.rab != "none" else None
        rope = rope_angles(n, self.dqk, opts.rope_base, x.device) if opts.rope else None
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        silu_weight = mask.float() / (self.max_len if opts.scale_by_n else 1)
        lasts = final_layer_rows(lengths, last_only, len(self.layers))
        for layer, last in zip(self.layers, lasts, strict=True):
            x = layer(x, mask, silu_weight, pos_index, buckets, rope, last=last)
        if last_only:
            x = x.squeeze(1)
        return x if self.final_norm is None else self.final_norm(x)

    def _buckets(self, timestamps: torch.Tensor, has_next: torch.Tensor) -> torch.Tensor:
        """[B, N, N] time bucket of t_query − t_key; has_next [B, N]: whether position i+1
        is the same user's next item (else the query keeps item i's own time)."""
        dt = query_timestamps(timestamps, has_next)[:, :, None] - timestamps[:, None, :]
        return time_buckets(dt, self.opts.num_time_buckets, self.opts.time_bucket_divisor)

    @staticmethod
    def param_counts(cfg: ModelConfig) -> tuple[int, int]:
        o, d, h = cfg.hstu, cfg.dim, cfg.heads
        dqk, dv = cfg.head_qk_dim, cfg.head_v_dim
        per_layer = d * ((2 if o.u_gate else 1) * h * dv + 2 * h * dqk) + (h * dv * d + d)
        if o.residual == "llama":
            per_layer += 2 * d + 3 * d * cfg.ffn_dim
        rab = 0
        if o.rab != "none":
            rab = 2 * cfg.max_len - 1 + (o.num_time_buckets + 1 if o.rab == "position_time" else 0)
        final = d if o.residual == "llama" else 0
        return cfg.layers * per_layer + final, cfg.max_len * d + cfg.layers * rab

    @staticmethod
    def macs_per_token(cfg: ModelConfig, seq_len: int) -> tuple[int, int]:
        o, d, h = cfg.hstu, cfg.dim, cfg.heads
        dqk, dv = cfg.head_qk_dim, cfg.head_v_dim
        dense = d * ((2 if o.u_gate else 1) * h * dv + 2 * h * dqk) + h * dv * d
        if o.residual == "llama":
            dense += 3 * d * cfg.ffn_dim
        attention = seq_len * h * (dqk + dv)
        return cfg.layers * dense, cfg.layers * attention
