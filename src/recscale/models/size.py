"""Parameter counts and FLOPs per token, measured on modules and in closed form.

Conventions (Kaplan et al. 2020, as Zhang et al. 2023 use them):

* **embedding** parameters are lookup tables: the item table(s), side-feature table,
  absolute position table and HSTU's relative-attention-bias tables (position offsets and
  time buckets). They cost no multiply-adds per token.
* **non-embedding** parameters are everything else: projection weights and biases, norm
  gains. A bias-free GPT block without norm gains holds exactly 12·D².
* **FLOPs per token** (one position of one sequence): 2 FLOPs per multiply-accumulate of
  every dense matmul in the encoder, plus the attention term 2·L·N·H·(d_qk + d_v) for the
  score and value matmuls over a row of length N = ``seq_len`` (the dense N×N matrix that
  the code computes, no causal halving). Norms, activations, rab look-ups and softmax are
  ignored. The output layer is reported separately as ``output_forward``
  (2·D·(num_items + 1), a full-catalogue softmax) and is not part of ``forward``;
  ``training = 3 · forward`` (backward ≈ 2 × forward).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from recscale.models.attention import AbsolutePositions
from recscale.models.base import build_model
from recscale.models.config import ModelConfig
from recscale.models.encoder import ENCODERS
from recscale.models.hstu import RelativeAttentionBias


@dataclass(frozen=True)
class ParamCounts:
    non_embedding: int
    embedding: int

    @property
    def total(self) -> int:
        return self.non_embedding + self.embedding


@dataclass(frozen=True)
class FlopCounts:
    forward: int
    training: int
    output_forward: int = 0


_EMBEDDING_MODULES = (nn.Embedding, AbsolutePositions, RelativeAttentionBias)


def count_parameters(model: nn.Module) -> ParamCounts:
    """Count a built model's parameters (works on the meta device); shared tensors count once."""
    embedding_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, _EMBEDDING_MODULES):
            embedding_ids.update(id(p) for p in module.parameters())
    text_proj = getattr(model, "text_proj", None)
    if text_proj is not None:  # item-side, like the tables: N stays the backbone's
        embedding_ids.update(id(p) for p in text_proj.parameters())
    seen: set[int] = set()
    non_emb = emb = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        if id(param) in embedding_ids:
            emb += param.numel()
        else:
            non_emb += param.numel()
    return ParamCounts(non_embedding=non_emb, embedding=emb)


def count_parameters_from_config(cfg: ModelConfig, num_items: int) -> ParamCounts:
    """The same counts in closed form, without building anything."""
    non_emb, emb = ENCODERS.get(cfg.backbone).param_counts(cfg)
    tables = (1 if cfg.tied else 2) * (num_items + 1)
    if cfg.num_item_features:
        tables += cfg.num_item_features + 1
    if cfg.text_dim:
        emb += cfg.text_dim * cfg.dim  # the text projection, an item-side table
    levels = len(cfg.behaviour_levels)
    if levels:
        tables += levels + 1
        if cfg.predict_behaviour:
            non_emb += (2 * cfg.dim + 1) * levels  # the behaviour head, a linear layer
    return ParamCounts(non_embedding=non_emb, embedding=emb + tables * cfg.dim)


def count_parameters_meta(cfg: ModelConfig, num_items: int) -> ParamCounts:
    """Build on the meta device (no memory) and count the module's tensors."""
    with torch.device("meta"):
        model = build_model(cfg, num_items)
    return count_parameters(model)


def flops_per_token(cfg: ModelConfig, num_items: int, seq_len: int) -> FlopCounts:
    """Forward and training FLOPs per token for sequences of length ``seq_len`` (see module doc)."""
    dense, attention = ENCODERS.get(cfg.backbone).macs_per_token(cfg, seq_len)
    forward = 2 * (dense + attention)
    return FlopCounts(
        forward=forward, training=3 * forward, output_forward=2 * cfg.dim * (num_items + 1)
    )


def describe_size(cfg: ModelConfig, num_items: int, seq_len: int | None = None) -> dict[str, Any]:
    """Everything ``recscale model size`` prints, as plain values."""
    seq_len = cfg.max_len if seq_len is None else seq_len
    params = count_parameters_from_config(cfg, num_items)
    flops = flops_per_token(cfg, num_items, seq_len)
    out: dict[str, Any] = {
        "backbone": cfg.backbone,
        "layers": cfg.layers,
        "dim": cfg.dim,
        "heads": cfg.heads,
        "max_len": cfg.max_len,
        "num_items": num_items,
        "seq_len": seq_len,
        "non_embedding_params": params.non_embedding,
        "embedding_params": params.embedding,
        "total_params": params.total,
    }
    out.update({f"flops_per_token_{k}": v for k, v in asdict(flops).items()})
    return out


__all__ = [
    "FlopCounts",
    "ParamCounts",
    "count_parameters",
    "count_parameters_from_config",
    "count_parameters_meta",
    "describe_size",
    "flops_per_token",
]
