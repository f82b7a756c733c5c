"""Named model configs: the papers' settings and a size ladder per backbone.

``preset(name)`` returns a validated :class:`ModelConfig`; ``preset_dict(name)`` the raw
mapping, for merging under a YAML file and ``--set`` overrides (defaults < preset < YAML
< overrides).

Ladders ``{backbone}-{xs,s,m,l,xl,xxl}`` share one (dim, layers, heads) grid so backbones
compare at equal shape; non-embedding parameters run from ~1e4 (xs) to ~2e8 (xxl).
``lsrm-*`` are the six models of Zhang et al. (2023) as bias-free GPT blocks without norm
gains, so their non-embedding count is exactly 12·L·d² (98.3K ... 829M), max length 50.
"""

from __future__ import annotations

from typing import Any

from recscale.errors import RecscaleError
from recscale.models.config import ModelConfig

_LADDER = {
    "xs": (32, 2, 2),
    "s": (64, 4, 2),
    "m": (128, 8, 4),
    "l": (256, 16, 8),
    "xl": (512, 24, 8),
    "xxl": (1024, 32, 16),
}

# HSTU public-benchmark protocol: L2-normalised embeddings, temperature 0.05.
_HSTU_PROTOCOL: dict[str, Any] = {"scoring": "cosine", "temperature": 0.05}


def _paper(
    backbone: str,
    dim: int,
    layers: int,
    heads: int,
    head_dim: int | None,
    dropout: float,
    max_len: int,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "backbone": backbone,
        "dim": dim,
        "layers": layers,
        "heads": heads,
        "max_len": max_len,
        "dropout": dropout,
        "emb_dropout": dropout,
        **_HSTU_PROTOCOL,
    }
    if head_dim is not None:
        cfg.update(qk_dim=head_dim, v_dim=head_dim)
    return cfg


PRESETS: dict[str, dict[str, Any]] = {
    # generative-recommenders configs/*-final.gin (REFERENCES §4.6)
    "sasrec-ml1m": _paper("sasrec", 50, 2, 1, None, 0.2, 200),
    "hstu-ml1m": _paper("hstu", 50, 2, 1, 50, 0.2, 200),
    "hstu-large-ml1m": _paper("hstu", 50, 8, 2, 25, 0.2, 200),
    "sasrec-ml20m": _paper("sasrec", 256, 4, 4, None, 0.2, 200),
    "hstu-ml20m": _paper("hstu", 256, 4, 4, 64, 0.2, 200),
    "hstu-large-ml20m": _paper("hstu", 256, 16, 8, 32, 0.2, 200),
    "sasrec-books": _paper("sasrec", 64, 4, 4, None, 0.5, 50),
    "hstu-books": _paper("hstu", 64, 4, 4, 16, 0.5, 50),
    "hstu-large-books": _paper("hstu", 64, 16, 8, 8, 0.5, 50),
}

for _backbone in ("hstu", "sasrec", "llama", "gpt"):
    for _size, (_d, _l, _h) in _LADDER.items():
        PRESETS[f"{_backbone}-{_size}"] = {
            "backbone": _backbone,
            "dim": _d,
            "layers": _l,
            "heads": _h,
        }

for _name, (_l, _d, _h) in {
    "98k": (2, 64, 2),
    "786k": (4, 128, 4),
    "1.57m": (8, 128, 4),
    "9.44m": (12, 256, 8),
    "75.5m": (24, 512, 8),
    "829m": (48, 1200, 24),
}.items():
    PRESETS[f"lsrm-{_name}"] = {
        "backbone": "gpt",
        "dim": _d,
        "layers": _l,
        "heads": _h,
        "max_len": 50,
        "gpt": {"bias": False, "norm_affine": False},
    }


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_dict(name: str) -> dict[str, Any]:
    """A copy of the preset's mapping (only the fields it sets)."""
    if name not in PRESETS:
        raise RecscaleError(f"unknown model preset {name!r}; known: {', '.join(preset_names())}")
    return {k: dict(v) if isinstance(v, dict) else v for k, v in PRESETS[name].items()}


def preset(name: str) -> ModelConfig:
    return ModelConfig.model_validate(preset_dict(name))
