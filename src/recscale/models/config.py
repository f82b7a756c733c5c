"""``ModelConfig``: every architectural choice is a field; defaults follow the papers.

One config describes every backbone. Shared fields (width, depth, heads, dropout,
item-embedding and scoring options) sit at the top level; options that only one
backbone reads sit in a nested section named after it (``hstu:``, ``sasrec:`` ...),
so an ablation is a config value, never a subclass.

Defaults: the top-level ones are the HSTU paper's ML-1M setting (d=50, 2 blocks, 1 head,
dropout 0.2, max length 200); the per-backbone sections match the official code
(``generative-recommenders`` for HSTU and SASRec, RecTools for eSASRec, nanoGPT for GPT, Llama
for Llama).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from recscale.config import StrictModel
from recscale.models.encoder import ENCODERS, Encoder


class HSTUOptions(StrictModel):
    """Switches for each HSTU ablation (Zhai et al. 2024; "Scaling New Frontiers" §RQ2)."""

    # phi2 in HSTU eq. (2): pointwise SiLU (paper) or a causal softmax (ablation).
    attention: Literal["silu", "softmax"] = "silu"
    # How SiLU attention is computed: "fused" tiles the causal triangle and recomputes in
    # backward (models/hstu_attention.py); "reference" is the plain expression. Same values.
    attention_impl: Literal["reference", "fused"] = "fused"
    # Relative attention bias: positions + log-bucketed time gaps (paper), positions only, none.
    rab: Literal["position_time", "position", "none"] = "position_time"
    # Rotary position embedding on q, k (the "RoPE instead of rab" ablation sets rab="none").
    rope: bool = False
    rope_base: float = Field(10000.0, gt=0.0)
    # Norm(AV) * U of eq. (3); False feeds Norm(AV) to f2 directly ("w/o feature interaction").
    u_gate: bool = True
    # "hstu": one pre-LayerNorm block x + f2(...); "llama": pre-RMSNorm attention sublayer
    # followed by a pre-RMSNorm SwiGLU sublayer, each with its own residual.
    residual: Literal["hstu", "llama"] = "hstu"
    # The official code divides SiLU attention by n (the padded maximum length, here max_len).
    scale_by_n: bool = True
    num_time_buckets: int = Field(128, ge=1)
    time_bucket_divisor: float = Field(0.301, gt=0.0)


class SASRecOptions(StrictModel):
    """SASRec block layout.

    ``"sasrec"`` is the layout of the original code as re-implemented in generative-recommenders:
    the query is LayerNorm(x) while keys/values are x, the residual adds to the normalised query,
    then LayerNorm before the point-wise FFN whose residual is inside it. ``"pre"`` is a standard
    pre-LN block with a final LN, ``"post"`` a standard post-LN block.
    """

    norm: Literal["sasrec", "pre", "post"] = "sasrec"
    activation: Literal["relu", "gelu"] = "relu"
    # generative-recommenders uses F.layer_norm without gain/bias (eps 1e-8).
    norm_affine: bool = False
    # A LayerNorm after the last block; None = only in the "pre" layout. RecTools' SASRec
    # (the eSASRec benchmark's SASRec+SS) has one after the "sasrec" layout too.
    final_norm: bool | None = None
    # "absolute": position 0 is the first item of the window (generative-recommenders);
    # "inverse": position 0 is the most recent item, what the original code's and RecTools'
    # tables index on their left-padded windows.
    positions: Literal["absolute", "inverse"] = "absolute"


class ESASRecOptions(StrictModel):
    """eSASRec's LiGR block as the eSASRec benchmark builds it (RecTools ``LiGRLayer``).

    Defaults follow that code: a bias-free SwiGLU FFN, positions counted back from the most
    recent item, no norm after the last block.
    """

    ffn: Literal["swiglu", "gelu"] = "swiglu"
    ffn_bias: bool = False
    # "inverse": position 0 is the most recent item (RecTools' LearnableInversePositionalEncoding
    # on left-padded windows); "absolute": position 0 is the first item of the window (SASRec).
    positions: Literal["inverse", "absolute"] = "inverse"
    final_norm: bool = False


class GPTOptions(StrictModel):
    """GPT-2 style block; with ``bias=False, norm_affine=False`` the blocks hold exactly 12·L·d²."""

    bias: bool = False
    norm_affine: bool = True


class LlamaOptions(StrictModel):
    rope_base: float = Field(10000.0, gt=0.0)


class ModelConfig(StrictModel):
    """Architecture of one sequential recommender (encoder + item embeddings + scoring)."""

    backbone: str = "hstu"
    dim: int = Field(50, ge=1)
    layers: int = Field(2, ge=1)
    heads: int = Field(1, ge=1)
    max_len: int = Field(200, ge=1)
    # Dropout inside the blocks (attention output / FFN / HSTU's linear dropout).
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    # Dropout on the input embeddings (item + position).
    emb_dropout: float = Field(0.2, ge=0.0, lt=1.0)
    # Dropout on the item id table itself while training, one mask per forward pass shared by
    # an item's input and output vectors (RecTools' item-net dropout, which its SASRec and
    # eSASRec apply at the model's dropout rate). 0 = off.
    item_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # FFN width = round(ffn_mult * dim); None = the backbone's ``default_ffn_mult``.
    ffn_mult: float | None = Field(None, gt=0.0)
    # Per-head widths of q/k and of u/v for backbones that honour them (HSTU);
    # None = dim // heads.
    qk_dim: int | None = Field(None, ge=1)
    v_dim: int | None = Field(None, ge=1)
    # Layer-wise adaptive dropout (Zhang et al. 2023): "linear" goes from dropout_first in the
    # lowest block to dropout_last in the top block; "constant" uses `dropout` everywhere.
    layer_dropout: Literal["constant", "linear"] = "constant"
    dropout_first: float | None = Field(None, ge=0.0, lt=1.0)
    dropout_last: float | None = Field(None, ge=0.0, lt=1.0)
    # One item table for input and output (True) or a separate output table.
    tied: bool = True
    # "cosine" L2-normalises query and item vectors (HSTU protocol, with temperature 0.05).
    scoring: Literal["dot", "cosine"] = "dot"
    temperature: float = Field(1.0, gt=0.0)
    # Item side features (attributes, domain): ids 1..num_item_features, up to
    # item_feature_slots per item, embedded and summed into the item's input and output
    # vectors. Set from data.item_features by the trainer; 0 = off.
    num_item_features: int = Field(0, ge=0)
    item_feature_slots: int = Field(1, ge=1)
    # Item text: width of the frozen text embedding each item carries; a learned linear map
    # of it is summed into the item's input and output vectors. Set from data.item_features
    # [text] by the trainer; 0 = off.
    text_dim: int = Field(0, ge=0)
    # Multi-behaviour: the distinct behaviour values (e.g. ratings 1..5) embedded as an extra
    # input per position; empty = off. Set from data.behaviour by the trainer.
    behaviour_levels: list[float] = Field(default_factory=list)
    # Also predict the next interaction's behaviour from (hidden state, next item) as an
    # auxiliary target, weighted by loss.behaviour_weight.
    predict_behaviour: bool = False
    init_std: float = Field(0.02, gt=0.0)
    # How the item id tables start: truncated normal at init_std (the SASRec / HSTU codes) or
    # xavier-normal, std sqrt(2 / (rows + dim)) (RecTools, behind the published eSASRec and
    # SASRec+SS rows, inits every matrix so).
    item_init: Literal["truncated-normal", "xavier-normal"] = "truncated-normal"
    # Multiply input item vectors by sqrt(dim); None = the backbone's own rule (SASRec and
    # HSTU code scale, RecTools' SASRec does not).
    scale_inputs: bool | None = None

    hstu: HSTUOptions = Field(default_factory=HSTUOptions)
    sasrec: SASRecOptions = Field(default_factory=SASRecOptions)
    esasrec: ESASRecOptions = Field(default_factory=ESASRecOptions)
    gpt: GPTOptions = Field(default_factory=GPTOptions)
    llama: LlamaOptions = Field(default_factory=LlamaOptions)

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        # The backbones register when recscale.models is imported, before any config is built.
        return ENCODERS.check(value, word="known")

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        explicit_heads = self.encoder_class.explicit_head_dims and None not in (
            self.qk_dim,
            self.v_dim,
        )
        if not explicit_heads and self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.layer_dropout == "linear" and (
            self.dropout_first is None or self.dropout_last is None
        ):
            raise ValueError("layer_dropout 'linear' needs dropout_first and dropout_last")
        if self.encoder_class.uses_rope(self) and self.head_qk_dim % 2:
            raise ValueError(f"RoPE needs an even per-head q/k width, got {self.head_qk_dim}")
        if self.behaviour_levels != sorted(set(self.behaviour_levels)):
            raise ValueError("behaviour_levels must be distinct and increasing")
        return self

    # Derived values, in one place so modules and the analytic counts agree.

    @property
    def encoder_class(self) -> type[Encoder]:
        return ENCODERS.get(self.backbone)

    @property
    def head_qk_dim(self) -> int:
        if self.encoder_class.explicit_head_dims and self.qk_dim is not None:
            return self.qk_dim
        return self.dim // self.heads

    @property
    def head_v_dim(self) -> int:
        if self.encoder_class.explicit_head_dims and self.v_dim is not None:
            return self.v_dim
        return self.dim // self.heads

    @property
    def ffn_dim(self) -> int:
        mult = self.ffn_mult if self.ffn_mult is not None else self.encoder_class.default_ffn_mult
        return max(1, round(mult * self.dim))

    @property
    def l2_norm(self) -> bool:
        """Query and item vectors are L2-normalised (cosine scoring)."""
        return self.scoring == "cosine"

    def layer_dropouts(self) -> list[float]:
        """Dropout rate of each block, lowest first."""
        if self.layer_dropout == "constant":
            return [self.dropout] * self.layers
        first, last = float(self.dropout_first or 0.0), float(self.dropout_last or 0.0)
        if self.layers == 1:
            return [first]
        step = (last - first) / (self.layers - 1)
        return [first + i * step for i in range(self.layers)]
