"""SASRec (Kang & McAuley, ICDM 2018) as re-implemented in generative-recommenders.

Learned positions (counted from the window's first item, or with ``sasrec.positions="inverse"``
back from its last) over item·sqrt(D), causal softmax multi-head attention and a
point-wise FFN (ReLU, width D by default) per block, dropout on the attention weights and
in the FFN. The default block layout (``sasrec.norm="sasrec"``) is the original code's::

    Q = LN1(X);  X = LN2(Q + MHA(Q, X, X));  X = X + FFN(X)

``"pre"`` (x + f(LN x), final LN) and ``"post"`` (LN(x + f(x))) are the textbook layouts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recscale.models.attention import (
    AbsolutePositions,
    Attend,
    CausalSelfAttention,
    PointwiseFFN,
    layer_norm,
    position_ids,
    rows_at,
)
from recscale.models.config import ModelConfig
from recscale.models.encoder import ENCODERS, Encoder, run_blocks


def _has_final_norm(cfg: ModelConfig) -> bool:
    final = cfg.sasrec.final_norm
    return cfg.sasrec.norm == "pre" if final is None else final


class SASRecBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, dropout: float) -> None:
        super().__init__()
        opts = cfg.sasrec
        self.norm = opts.norm
        self.attn = CausalSelfAttention(cfg.dim, cfg.heads, bias=True, dropout=dropout)
        self.ffn = PointwiseFFN(cfg.dim, cfg.ffn_dim, opts.activation, dropout)
        self.ln1 = layer_norm(cfg.dim, opts.norm_affine, eps=1e-8)
        self.ln2 = layer_norm(cfg.dim, opts.norm_affine, eps=1e-8)

    def forward(
        self,
        x: torch.Tensor,
        attend: Attend | None = None,
        layer: int = 0,
        last: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D] (causal, or as ``attend`` says); [B, 1, D] at ``last``."""
        if self.norm == "sasrec":
            q = self.ln1(x)
            attended = self.attn(q, kv_input=x, attend=attend, layer=layer, last=last)
            x = self.ln2(rows_at(q, last) + attended)
            return x + self.ffn(x)
        if self.norm == "pre":
            x = rows_at(x, last) + self.attn(self.ln1(x), attend=attend, layer=layer, last=last)
            return x + self.ffn(self.ln2(x))
        x = self.ln1(rows_at(x, last) + self.attn(x, attend=attend, layer=layer, last=last))
        return self.ln2(x + self.ffn(x))


@ENCODERS.register("sasrec")
class SASRec(Encoder):
    supports_attend = True
    supports_last_only = True
    scale_inputs = True
    default_ffn_mult = 1.0  # the point-wise FFN of the SASRec code is D wide

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.inverse_positions = cfg.sasrec.positions == "inverse"
        self.positions = AbsolutePositions(
            cfg.max_len, cfg.dim, cfg.emb_dropout, std=math.sqrt(1.0 / cfg.dim)
        )
        self.blocks = nn.ModuleList(SASRecBlock(cfg, p) for p in cfg.layer_dropouts())
        self.final_norm = (
            layer_norm(cfg.dim, cfg.sasrec.norm_affine, eps=1e-8) if _has_final_norm(cfg) else None
        )
        # as generative-recommenders: xavier-normal weights, nn.MultiheadAttention's zero biases
        for name, param in self.blocks.named_parameters():
            if param.ndim == 2 and name.endswith("weight"):
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
        """x: [B, N, D] scaled item vectors -> [B, N, D] ([B, D] at each row's last position
        with ``last_only``); timestamps are not used."""
        lengths = lengths.to(x.device)
        index = position_ids(self.inverse_positions, lengths, x.shape[1], attend)
        x = self.positions(x, index)
        x = run_blocks(self.blocks, x, lengths, last_only, attend)
        return x if self.final_norm is None else self.final_norm(x)

    @staticmethod
    def param_counts(cfg: ModelConfig) -> tuple[int, int]:
        d, f = cfg.dim, cfg.ffn_dim
        norm = 2 * d if cfg.sasrec.norm_affine else 0
        per_block = (4 * d * d + 4 * d) + (2 * d * f + f + d) + 2 * norm
        final = norm if _has_final_norm(cfg) else 0
        return cfg.layers * per_block + final, cfg.max_len * d

    @staticmethod
    def macs_per_token(cfg: ModelConfig, seq_len: int) -> tuple[int, int]:
        d = cfg.dim
        return cfg.layers * (4 * d * d + 2 * d * cfg.ffn_dim), cfg.layers * 2 * seq_len * d
