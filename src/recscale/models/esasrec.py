"""eSASRec ("Enhancing Transformer-based Recommendations in a Modular Fashion", RecSys'25,
arXiv 2508.06450): SASRec with LiGR blocks.

The blocks are LinkedIn's LiGR layers ("From Features to Transformers", arXiv 2502.03417) as
the eSASRec benchmark runs them (RecTools ``rectools/models/nn/transformers/ligr.py``,
``LiGRLayer``; blondered/transformer_benchmark ``transformer_layers/ligr.py``): pre-LayerNorm
sublayers whose outputs pass a learned sigmoid gate before they join the residual stream::

    x = x + sigmoid(G1 x) * drop(MHA(LN1 x))
    x = x + sigmoid(G2 x) * drop(FFN(LN2 x))

The gates read the residual stream ``x`` itself, not its normalised copy. The FFN is a
bias-free SwiGLU of width 4·D (RecTools ``SwigluFeedForward``: ``W2 drop(SiLU(W1 x) * W3 x)``).
Inputs are the item vectors (not scaled by sqrt(D)) plus a learned position table, then
embedding dropout; as in RecTools no norm follows the last block unless
``esasrec.final_norm`` asks for one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recscale.models.attention import (
    AbsolutePositions,
    Attend,
    CausalSelfAttention,
    layer_norm,
    position_ids,
    rows_at,
)
from recscale.models.config import ModelConfig
from recscale.models.encoder import ENCODERS, Encoder, run_blocks


class LiGRFFN(nn.Module):
    """SwiGLU ``W2 drop(SiLU(W1 x) * W3 x)`` or GELU ``W2 drop(GELU(W1 x))``, no residual."""

    def __init__(self, dim: int, hidden: int, kind: str, bias: bool, dropout: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=bias)
        self.w3 = nn.Linear(dim, hidden, bias=bias) if kind == "swiglu" else None
        self.w2 = nn.Linear(hidden, dim, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]."""
        h = F.gelu(self.w1(x)) if self.w3 is None else F.silu(self.w1(x)) * self.w3(x)
        return self.w2(self.drop(h))


class LiGRBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, dropout: float) -> None:
        super().__init__()
        opts = cfg.esasrec
        self.norm1 = layer_norm(cfg.dim, affine=True)
        self.attn = CausalSelfAttention(cfg.dim, cfg.heads, bias=True, dropout=dropout)
        self.gate1 = nn.Linear(cfg.dim, cfg.dim)
        self.norm2 = layer_norm(cfg.dim, affine=True)
        self.ffn = LiGRFFN(cfg.dim, cfg.ffn_dim, opts.ffn, opts.ffn_bias, dropout)
        self.gate2 = nn.Linear(cfg.dim, cfg.dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        attend: Attend | None = None,
        layer: int = 0,
        last: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D] (causal, or within each packed segment); [B, 1, D] at
        ``last``."""
        # LiGR gated residuals (RecTools LiGRLayer.forward): the gate sees the un-normed stream.
        attended = self.attn(self.norm1(x), attend=attend, layer=layer, last=last)
        x = rows_at(x, last)
        x = x + torch.sigmoid(self.gate1(x)) * self.drop(attended)
        return x + torch.sigmoid(self.gate2(x)) * self.drop(self.ffn(self.norm2(x)))


@ENCODERS.register("esasrec")
class ESASRec(Encoder):
    scale_inputs = False  # RecTools feeds the item vectors as they are
    # Packed rows only: its inverse positions count back from each user's last item, which
    # a ranking or M-FALCON attend (candidates after cached keys) does not define.
    supports_packing = True
    supports_last_only = True
    default_ffn_mult = 4.0  # RecTools ff_factors_multiplier; the benchmark's Beauty / ML-1M choice

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        opts = cfg.esasrec
        self.inverse_positions = opts.positions == "inverse"
        self.positions = AbsolutePositions(cfg.max_len, cfg.dim, cfg.emb_dropout, std=None)
        self.blocks = nn.ModuleList(LiGRBlock(cfg, p) for p in cfg.layer_dropouts())
        self.final_norm = layer_norm(cfg.dim, affine=True) if opts.final_norm else None
        # RecTools: xavier-normal matrices; nn.MultiheadAttention's zero in/out biases.
        for name, param in self.blocks.named_parameters():
            if param.ndim == 2:
                nn.init.xavier_normal_(param)
            elif ".attn." in f".{name}" and name.endswith("bias"):
                nn.init.zeros_(param)

    def forward(
        self,
        x: torch.Tensor,
        timestamps: torch.Tensor | None,
        lengths: torch.Tensor,
        attend: Attend | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """x: [B, N, D] item vectors, lengths: [B] -> [B, N, D] ([B, D] at each row's last
        position with ``last_only``); timestamps are not used. ``attend``: a packed batch's
        (``packed_attend``), nothing else."""
        if attend is not None and (attend.segments is None or attend.past is not None):
            raise ValueError("eSASRec takes the attend of a packed batch only")
        lengths = lengths.to(x.device)
        index = position_ids(self.inverse_positions, lengths, x.shape[1], attend)
        x = self.positions(x, index)
        x = run_blocks(self.blocks, x, lengths, last_only, attend)
        return x if self.final_norm is None else self.final_norm(x)

    @staticmethod
    def param_counts(cfg: ModelConfig) -> tuple[int, int]:
        d, f, opts = cfg.dim, cfg.ffn_dim, cfg.esasrec
        attention = 4 * d * d + 4 * d  # q, k, v, out with biases
        gates = 2 * (d * d + d)
        if opts.ffn == "swiglu":
            ffn = 3 * d * f + (2 * f + d if opts.ffn_bias else 0)
        else:
            ffn = 2 * d * f + (f + d if opts.ffn_bias else 0)
        per_block = attention + gates + ffn + 2 * 2 * d  # two affine LayerNorms
        final = 2 * d if opts.final_norm else 0
        return cfg.layers * per_block + final, cfg.max_len * d

    @staticmethod
    def macs_per_token(cfg: ModelConfig, seq_len: int) -> tuple[int, int]:
        d = cfg.dim
        ffn = (3 if cfg.esasrec.ffn == "swiglu" else 2) * d * cfg.ffn_dim
        return cfg.layers * (4 * d * d + 2 * d * d + ffn), cfg.layers * 2 * seq_len * d
