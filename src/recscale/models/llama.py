"""Llama-style decoder: pre-RMSNorm, rotary positions on q/k, SwiGLU MLP, no biases.

Block: ``x = x + drop(Attn_rope(RMS1 x));  x = x + drop(SwiGLU(RMS2 x))``, then a final
RMSNorm. No absolute position table: order enters only through RoPE.
"""

from __future__ import annotations

import torch
from torch import nn

from recscale.models.attention import Attend, CausalSelfAttention, RMSNorm, SwiGLU, rows_at
from recscale.models.config import ModelConfig
from recscale.models.encoder import ENCODERS, Encoder, run_blocks


class LlamaBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, dropout: float) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.dim)
        self.attn = CausalSelfAttention(
            cfg.dim, cfg.heads, bias=False, dropout=dropout, rope_base=cfg.llama.rope_base
        )
        self.norm2 = RMSNorm(cfg.dim)
        self.mlp = SwiGLU(cfg.dim, cfg.ffn_dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        attend: Attend | None = None,
        layer: int = 0,
        last: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D] (causal, or as ``attend`` says); [B, 1, D] at ``last``."""
        attended = self.attn(self.norm1(x), attend=attend, layer=layer, last=last)
        x = rows_at(x, last) + self.drop(attended)
        return x + self.drop(self.mlp(self.norm2(x)))


@ENCODERS.register("llama")
class Llama(Encoder):
    supports_attend = True
    supports_last_only = True
    scale_inputs = False
    default_ffn_mult = 8.0 / 3.0

    @staticmethod
    def uses_rope(cfg: ModelConfig) -> bool:
        return True

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.max_len = cfg.max_len
        self.emb_drop = nn.Dropout(cfg.emb_dropout)
        self.blocks = nn.ModuleList(LlamaBlock(cfg, p) for p in cfg.layer_dropouts())
        self.final_norm = RMSNorm(cfg.dim)
        for param in self.blocks.parameters():
            if param.ndim == 2:
                nn.init.normal_(param, std=cfg.init_std)

    def forward(
        self,
        x: torch.Tensor,
        timestamps: torch.Tensor | None,
        lengths: torch.Tensor,
        attend: Attend | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """x: [B, N, D] item vectors -> [B, N, D] ([B, D] at each row's last position with
        ``last_only``); timestamps are not used."""
        n = x.shape[1] if attend is None else int(attend.positions.max()) + 1
        if n > self.max_len:
            raise ValueError(f"sequence length {n} exceeds max_len {self.max_len}")
        x = self.emb_drop(x)
        return self.final_norm(run_blocks(self.blocks, x, lengths.to(x.device), last_only, attend))

    @staticmethod
    def param_counts(cfg: ModelConfig) -> tuple[int, int]:
        d = cfg.dim
        per_block = 4 * d * d + 3 * d * cfg.ffn_dim + 2 * d
        return cfg.layers * per_block + d, 0

    @staticmethod
    def macs_per_token(cfg: ModelConfig, seq_len: int) -> tuple[int, int]:
        d = cfg.dim
        return cfg.layers * (4 * d * d + 3 * d * cfg.ffn_dim), cfg.layers * 2 * seq_len * d
