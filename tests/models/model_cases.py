"""Tiny configs covering every backbone and every HSTU switch, shared by the model tests."""

from __future__ import annotations

from typing import Any

import torch

from recscale.models import ModelConfig

NUM_ITEMS = 30
TINY: dict[str, Any] = {
    "dim": 16,
    "heads": 2,
    "layers": 2,
    "max_len": 12,
    "dropout": 0.0,
    "emb_dropout": 0.0,
}

HSTU_SWITCHES: dict[str, dict[str, Any]] = {
    "hstu": {},
    "hstu-softmax": {"attention": "softmax"},
    "hstu-rab-position": {"rab": "position"},
    "hstu-rab-none": {"rab": "none"},
    "hstu-rope": {"rope": True, "rab": "none"},
    "hstu-rope-rab": {"rope": True},
    "hstu-no-ugate": {"u_gate": False},
    "hstu-llama": {"residual": "llama"},
    "hstu-no-scale": {"scale_by_n": False},
    "hstu-softmax-llama-rope": {"attention": "softmax", "residual": "llama", "rope": True},
}

VARIANTS: dict[str, dict[str, Any]] = {
    "sasrec": {"backbone": "sasrec"},
    "sasrec-pre": {"backbone": "sasrec", "sasrec": {"norm": "pre", "norm_affine": True}},
    "sasrec-post": {"backbone": "sasrec", "sasrec": {"norm": "post", "activation": "gelu"}},
    # RecTools' SASRec: affine norms, a norm after the last block, unscaled item vectors,
    # positions counted back from the last item.
    "sasrec-rectools": {
        "backbone": "sasrec",
        "scale_inputs": False,
        "sasrec": {"norm_affine": True, "final_norm": True, "positions": "inverse"},
    },
    "esasrec": {"backbone": "esasrec"},
    "esasrec-absolute-gelu": {
        "backbone": "esasrec",
        "esasrec": {"positions": "absolute", "ffn": "gelu", "ffn_bias": True, "final_norm": True},
    },
    "esasrec-swiglu-bias": {"backbone": "esasrec", "ffn_mult": 1.0, "esasrec": {"ffn_bias": True}},
    "gpt": {"backbone": "gpt"},
    "gpt-bias": {"backbone": "gpt", "gpt": {"bias": True}},
    "llama": {"backbone": "llama"},
    "hstu-untied-cosine": {
        "backbone": "hstu",
        "tied": False,
        "scoring": "cosine",
        "temperature": 0.05,
        "qk_dim": 4,
        "v_dim": 6,
    },
    **{name: {"backbone": "hstu", "hstu": sw} for name, sw in HSTU_SWITCHES.items()},
}


def config(name: str, **overrides: Any) -> ModelConfig:
    return ModelConfig.model_validate({**TINY, **VARIANTS[name], **overrides})


def random_batch(
    batch: int, n: int, lengths: list[int], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """items [B, N] right-padded, timestamps [B, N] (0 at padding), lengths [B]."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, NUM_ITEMS + 1, (batch, n), generator=g)
    gaps = torch.randint(0, 10**6, (batch, n), generator=g)
    timestamps = 1_600_000_000 + torch.cumsum(gaps, 1)
    lens = torch.tensor(lengths)
    pad = torch.arange(n)[None, :] >= lens[:, None]
    return items.masked_fill(pad, 0), timestamps.masked_fill(pad, 0), lens
