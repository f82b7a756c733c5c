"""The backbone contract and its registry: a leaf module every backbone and the config use.

An encoder owns its facts: the config defaults only it reads (FFN width, whether it honours
explicit per-head widths, whether it rotates q/k) sit on the class beside its exact
parameter and FLOP formulas, so adding a backbone is one decorated class in one file.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from recscale.registry import Registry

if TYPE_CHECKING:  # the config reads these facts; the encoder only needs its type
    from recscale.models.attention import Attend
    from recscale.models.config import ModelConfig


class Encoder(nn.Module):
    """A causal backbone: ``forward(x [B,N,D], timestamps [B,N] | None, lengths [B]) -> [B,N,D]``.

    ``x`` holds item (+ side-feature and behaviour) vectors of right-padded sequences; the
    encoder adds its positional information and embedding dropout. Subclasses also give their exact
    parameter count and multiply-accumulates per token as closed forms of the config, which
    ``models/size.py`` checks against the built module.
    """

    # Multiply item vectors by sqrt(D) before the positions are added (SASRec / HSTU code).
    scale_inputs: ClassVar[bool] = False
    # FFN width = round(ffn_mult * dim) when the config leaves ffn_mult unset.
    default_ffn_mult: ClassVar[float] = 4.0
    # Whether model.qk_dim / model.v_dim set the per-head widths (else dim // heads).
    explicit_head_dims: ClassVar[bool] = False

    # Whether forward takes ``attend`` (an arbitrary mask over cached keys, models/attention.py),
    # which the target-aware rankers and M-FALCON need.
    supports_attend: ClassVar[bool] = False
    # Whether forward takes a packed batch's ``attend`` (``packed_attend``: causal within each
    # segment, no cached keys); every backbone with ``supports_attend`` does.
    supports_packing: ClassVar[bool] = False
    # Whether forward takes ``last_only=True`` and then returns [B, D] at each row's last real
    # position (``lengths - 1``), computing only that query in the final layer: evaluation
    # ranks with nothing else. Others have it gathered from the full output.
    supports_last_only: ClassVar[bool] = False

    def forward(
        self, x: torch.Tensor, timestamps: torch.Tensor | None, lengths: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def input_scale(cls, cfg: ModelConfig) -> float:
        """What the item vectors are multiplied by before the encoder: sqrt(D) where
        ``cfg.scale_inputs`` (or, left unset, the backbone's ``scale_inputs``) says so."""
        scale = cls.scale_inputs if cfg.scale_inputs is None else cfg.scale_inputs
        return math.sqrt(cfg.dim) if scale else 1.0

    @staticmethod
    def uses_rope(cfg: ModelConfig) -> bool:
        """Whether q/k are rotated (RoPE needs an even per-head q/k width)."""
        return False

    @staticmethod
    def param_counts(cfg: ModelConfig) -> tuple[int, int]:
        """(non-embedding, embedding-like) parameters of the encoder alone."""
        raise NotImplementedError

    @staticmethod
    def macs_per_token(cfg: ModelConfig, seq_len: int) -> tuple[int, int]:
        """(dense, attention) multiply-accumulates per token in one forward pass."""
        raise NotImplementedError


def run_blocks(
    blocks: nn.ModuleList,
    x: torch.Tensor,
    lengths: torch.Tensor,
    last_only: bool,
    attend: Attend | None = None,
) -> torch.Tensor:
    """``x = block(x, attend, i, last)`` through ``blocks`` (SASRec, eSASRec and Llama blocks),
    the final one at each row's last position under ``last_only`` -> [B, N, D] or [B, D]."""
    lasts = final_layer_rows(lengths, last_only, len(blocks))
    for i, (block, last) in enumerate(zip(blocks, lasts, strict=True)):
        x = block(x, attend, i, last)
    return x.squeeze(1) if last_only else x


def final_layer_rows(
    lengths: torch.Tensor, last_only: bool, depth: int
) -> list[torch.Tensor | None]:
    """Per layer, the ``last`` argument of ``forward(..., last_only)``: None (every query) for
    all but the final layer, which under ``last_only`` gets each row's last real position."""
    if not last_only:
        return [None] * depth
    return [None] * (depth - 1) + [(lengths - 1).clamp(min=0)]


ENCODERS: Registry[type[Encoder]] = Registry("backbone")


def attend_backbones() -> list[str]:
    """The backbones whose encoder takes ``attend`` (target-aware ranking, M-FALCON)."""
    return [n for n in ENCODERS.names() if ENCODERS.get(n).supports_attend]


def packing_backbones() -> list[str]:
    """The backbones that train on packed batches (``train.pack_batches``)."""
    return [
        n
        for n in ENCODERS.names()
        if ENCODERS.get(n).supports_attend or ENCODERS.get(n).supports_packing
    ]
