"""GPT-style decoder (GPT-2 / nanoGPT): pre-LayerNorm, learned positions, GELU MLP (4x).

Block: ``x = x + drop(Attn(LN1 x));  x = x + drop(MLP(LN2 x))``, then a final LayerNorm.
With ``gpt.bias=False`` and ``gpt.norm_affine=False`` each block holds exactly 12·D² weights
(4·D² attention + 8·D² MLP), the Kaplan count used by Zhang et al. (2023).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recscale.models.attention import (
    AbsolutePositions,
    CausalSelfAttention,
    GeluMLP,
    layer_norm,
    rows_at,
)
from recscale.models.config import ModelConfig
from recscale.models.encoder import ENCODERS, Encoder, final_layer_rows


class GPTBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, dropout: float) -> None:
        super().__init__()
        o = cfg.gpt
        self.ln1 = layer_norm(cfg.dim, o.norm_affine, bias=o.bias)
        self.attn = CausalSelfAttention(cfg.dim, cfg.heads, bias=o.bias, dropout=dropout)
        self.ln2 = layer_norm(cfg.dim, o.norm_affine, bias=o.bias)
        self.mlp = GeluMLP(cfg.dim, cfg.ffn_dim, bias=o.bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]; [B, 1, D] at ``last``."""
        x = rows_at(x, last) + self.drop(self.attn(self.ln1(x), last=last))
        return x + self.drop(self.mlp(self.ln2(x)))


@ENCODERS.register("gpt")
class GPT(Encoder):
    scale_inputs = False
    supports_last_only = True
    default_ffn_mult = 4.0

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.positions = AbsolutePositions(cfg.max_len, cfg.dim, cfg.emb_dropout, std=cfg.init_std)
        self.blocks = nn.ModuleList(GPTBlock(cfg, p) for p in cfg.layer_dropouts())
        self.final_norm = layer_norm(cfg.dim, cfg.gpt.norm_affine, bias=cfg.gpt.bias)
        for name, param in self.blocks.named_parameters():
            if name.endswith("weight") and param.ndim == 2:
                # nanoGPT: residual projections scaled by 1/sqrt(2L)
                scaled = name.endswith(("attn.out.weight", "mlp.w2.weight"))
                std = cfg.init_std / math.sqrt(2 * cfg.layers) if scaled else cfg.init_std
                nn.init.normal_(param, std=std)
            elif name.endswith("bias") and "ln" not in name:
                nn.init.zeros_(param)

    def forward(
        self,
        x: torch.Tensor,
        timestamps: torch.Tensor | None,
        lengths: torch.Tensor,
        last_only: bool = False,
    ) -> torch.Tensor:
        """x: [B, N, D] item vectors -> [B, N, D] ([B, D] at each row's last position with
        ``last_only``); timestamps are not used."""
        x = self.positions(x)
        lasts = final_layer_rows(lengths.to(x.device), last_only, len(self.blocks))
        for block, last in zip(self.blocks, lasts, strict=True):
            x = block(x, last)
        return self.final_norm(x.squeeze(1) if last_only else x)

    @staticmethod
    def param_counts(cfg: ModelConfig) -> tuple[int, int]:
        d, f, o = cfg.dim, cfg.ffn_dim, cfg.gpt
        norm = (2 * d if o.bias else d) if o.norm_affine else 0
        per_block = 4 * d * d + 2 * d * f + 2 * norm
        if o.bias:
            per_block += 4 * d + f + d
        return cfg.layers * per_block + norm, cfg.max_len * d

    @staticmethod
    def macs_per_token(cfg: ModelConfig, seq_len: int) -> tuple[int, int]:
        d = cfg.dim
        return cfg.layers * (4 * d * d + 2 * d * cfg.ffn_dim), cfg.layers * 2 * seq_len * d
