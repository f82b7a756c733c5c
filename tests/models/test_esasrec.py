"""eSASRec's LiGR blocks against a per-position float64 reference, and its positions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recscale.models import ModelConfig, build_model
from recscale.models.attention import Attend, position_ids
from tests.models.model_cases import NUM_ITEMS, TINY, random_batch


def _linear(layer: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    out = layer.weight @ x
    return out if layer.bias is None else out + layer.bias


def _layer_norm(norm: torch.nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    mean = x.mean()
    var = ((x - mean) ** 2).mean()
    return (x - mean) / math.sqrt(var + norm.eps) * norm.weight + norm.bias


def reference_encode(model, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The LiGR equations one position at a time (RecTools LiGRLayer), in float64:
    ``x += sigmoid(G1 x) * MHA(LN1 x)``, ``x += sigmoid(G2 x) * FFN(LN2 x)``."""
    cfg: ModelConfig = model.cfg
    enc, d, heads = model.encoder, cfg.dim, cfg.heads
    dh = d // heads
    out = torch.zeros(*items.shape, d, dtype=torch.float64)
    for b in range(items.shape[0]):
        length = int(lengths[b])
        inverse = cfg.esasrec.positions == "inverse"
        xs = [
            model.item_emb.weight[items[b, i]]
            + enc.positions.table.weight[length - 1 - i if inverse else i]
            for i in range(length)
        ]
        for block in enc.blocks:
            normed = [_layer_norm(block.norm1, x) for x in xs]
            qs = [_linear(block.attn.q, n) for n in normed]
            kvs = [_linear(block.attn.kv, n) for n in normed]
            ks, vs = [kv[:d] for kv in kvs], [kv[d:] for kv in kvs]
            for i in range(length):
                mixed = []
                for h in range(heads):
                    part = slice(h * dh, (h + 1) * dh)
                    scores = torch.stack([qs[i][part] @ ks[j][part] for j in range(i + 1)])
                    weights = torch.softmax(scores / math.sqrt(dh), 0)
                    mixed.append(sum(w * vs[j][part] for j, w in enumerate(weights)))
                attn = _linear(block.attn.out, torch.cat(mixed))
                xs[i] = xs[i] + torch.sigmoid(_linear(block.gate1, xs[i])) * attn
            for i in range(length):
                n = _layer_norm(block.norm2, xs[i])
                ffn = block.ffn
                if ffn.w3 is None:
                    hidden = F.gelu(_linear(ffn.w1, n))
                else:
                    hidden = F.silu(_linear(ffn.w1, n)) * _linear(ffn.w3, n)
                xs[i] = xs[i] + torch.sigmoid(_linear(block.gate2, xs[i])) * _linear(ffn.w2, hidden)
        for i in range(length):
            out[b, i] = xs[i] if enc.final_norm is None else _layer_norm(enc.final_norm, xs[i])
    return out


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"positions": "absolute"},
        {"ffn": "gelu", "ffn_bias": True, "final_norm": True},
        {"ffn_bias": True, "positions": "absolute", "final_norm": True},
    ],
)
def test_encoder_equals_reference(options: dict) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate({**TINY, "backbone": "esasrec", "esasrec": options})
    model = build_model(cfg, NUM_ITEMS).double().eval()
    with torch.no_grad():  # random, non-zero biases so that every term is exercised
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.3)
    items, _, lengths = random_batch(3, 7, [7, 4, 1], seed=3)
    with torch.no_grad():
        fast = model.encode(items, None, lengths)
        slow = reference_encode(model, items, lengths)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)


def test_closed_gates_make_blocks_the_identity() -> None:
    """sigmoid(-inf) = 0: with both gates shut a LiGR block passes its input through."""
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate({**TINY, "backbone": "esasrec"})
    model = build_model(cfg, NUM_ITEMS).eval()
    with torch.no_grad():
        for block in model.encoder.blocks:
            for gate in (block.gate1, block.gate2):
                gate.weight.zero_()
                gate.bias.fill_(-1e4)
        items, _, lengths = random_batch(2, 5, [5, 3])
        hidden = model.encode(items, None, lengths)
        index = position_ids(True, lengths, items.shape[1], None)
        inputs = model.encoder.positions(model.item_emb(items), index)
    valid = items != 0
    torch.testing.assert_close(hidden[valid], inputs[valid])


def test_esasrec_takes_no_attend_but_a_packed_one() -> None:
    model = build_model(ModelConfig.model_validate({**TINY, "backbone": "esasrec"}), NUM_ITEMS)
    items = torch.tensor([[1, 2, 3, 4]])
    causal = torch.ones(4, 4, dtype=torch.bool).tril()[None]
    ranking = Attend(causal, torch.arange(4)[None], torch.arange(4)[None])
    with pytest.raises(ValueError, match="packed batch only"):
        model.encode(items, attend=ranking)


def test_defaults_follow_the_rectools_ligr_layer() -> None:
    cfg = ModelConfig(backbone="esasrec", dim=64, layers=1, heads=1, max_len=50)
    assert cfg.ffn_dim == 256  # ff_factors_multiplier 4
    block = build_model(cfg, NUM_ITEMS).encoder.blocks[0]
    assert block.ffn.w3 is not None and block.ffn.w1.bias is None  # bias-free SwiGLU
    assert block.gate1.bias is not None and block.norm1.weight is not None
    assert build_model(cfg, NUM_ITEMS).encoder.final_norm is None
