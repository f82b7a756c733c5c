"""HSTU's fast path against a per-element reference, and its time buckets."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.models import ModelConfig, build_model, time_buckets
from recscale.models.hstu import query_timestamps, relative_positions
from tests.models.model_cases import HSTU_SWITCHES, NUM_ITEMS, TINY, random_batch


def _bucket(dt: int, num_buckets: int = 128, divisor: float = 0.301) -> int:
    return min(max(math.floor(math.log(max(abs(dt), 1)) / divisor), 0), num_buckets)


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    mean = sum(x.tolist()) / len(x)
    var = sum((e - mean) ** 2 for e in x.tolist()) / len(x)
    return (x - mean) / math.sqrt(var + 1e-6)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x / math.sqrt(sum(e * e for e in x.tolist()) / len(x) + 1e-6) * weight


def _rope(x: torch.Tensor, pos: int, base: float) -> torch.Tensor:
    out = x.clone()
    d = len(x)
    for m in range(d // 2):
        theta = pos * base ** (-2 * m / d)
        c, s = math.cos(theta), math.sin(theta)
        out[2 * m] = x[2 * m] * c - x[2 * m + 1] * s
        out[2 * m + 1] = x[2 * m] * s + x[2 * m + 1] * c
    return out


def reference_encode(model, items, timestamps, lengths) -> torch.Tensor:
    """HSTU eqs. (1)-(3) one query i and one key j at a time (float64)."""
    cfg: ModelConfig = model.cfg
    o, enc = cfg.hstu, model.encoder
    heads, dqk, dv = cfg.heads, cfg.head_qk_dim, cfg.head_v_dim
    batch, n = items.shape
    out = torch.zeros(batch, n, cfg.dim, dtype=torch.float64)
    for b in range(batch):
        length = int(lengths[b])
        xs = [
            model.item_emb.weight[items[b, i]].double() * math.sqrt(cfg.dim)
            + enc.positions.table.weight[i].double()
            for i in range(length)
        ]
        for layer in enc.layers:
            f1 = layer.f1.weight.double()
            proj = []
            for i in range(length):
                if o.residual == "llama":
                    normed = _rms_norm(xs[i], layer.norm1.weight.double())
                else:
                    normed = _layer_norm(xs[i])
                z = F.silu(f1 @ normed)
                uw = heads * dv if o.u_gate else 0
                u, v = z[:uw], z[uw : uw + heads * dv]
                q = z[uw + heads * dv : uw + heads * (dv + dqk)]
                k = z[uw + heads * (dv + dqk) :]
                qs = [q[h * dqk : (h + 1) * dqk] for h in range(heads)]
                ks = [k[h * dqk : (h + 1) * dqk] for h in range(heads)]
                if o.rope:
                    qs = [_rope(e, i, o.rope_base) for e in qs]
                    ks = [_rope(e, i, o.rope_base) for e in ks]
                proj.append((u, [v[h * dv : (h + 1) * dv] for h in range(heads)], qs, ks))
            new = []
            for i in range(length):
                u = proj[i][0]
                t_query = None
                if timestamps is not None:
                    t_query = int(timestamps[b, i + 1] if i + 1 < length else timestamps[b, i])
                head_outputs = []
                for h in range(heads):
                    scores = []
                    for j in range(i + 1):
                        s = float(proj[i][2][h] @ proj[j][3][h])
                        if o.rab != "none":
                            s += float(layer.rab.pos_w[j - i + cfg.max_len - 1])
                            if o.rab == "position_time" and t_query is not None:
                                dt = t_query - int(timestamps[b, j])
                                s += float(layer.rab.time_w[_bucket(dt, o.num_time_buckets)])
                        scores.append(s)
                    if o.attention == "silu":
                        weights = [s / (1 + math.exp(-s)) for s in scores]
                        if o.scale_by_n:
                            weights = [w / cfg.max_len for w in weights]
                    else:
                        scaled = [s / math.sqrt(dqk) for s in scores]
                        top = max(scaled)
                        exps = [math.exp(s - top) for s in scaled]
                        weights = [e / sum(exps) for e in exps]
                    av = sum(w * proj[j][1][h] for j, w in enumerate(weights))
                    head_outputs.append(av)
                av = _layer_norm(torch.cat(head_outputs))
                gated = av * u if o.u_gate else av
                y = xs[i] + layer.f2.weight.double() @ gated + layer.f2.bias.double()
                if o.residual == "llama":
                    hn = _rms_norm(y, layer.norm2.weight.double())
                    ffn = layer.ffn
                    inner = F.silu(ffn.w1.weight.double() @ hn) * (ffn.w3.weight.double() @ hn)
                    y = y + ffn.w2.weight.double() @ inner
                new.append(y)
            xs = new
        for i in range(length):
            x = xs[i]
            if enc.final_norm is not None:
                x = _rms_norm(x, enc.final_norm.weight.double())
            out[b, i] = x
    return out


CASES = [(name, True) for name in sorted(HSTU_SWITCHES)] + [
    (name, False) for name, sw in sorted(HSTU_SWITCHES.items()) if "rab" not in sw
]


@pytest.mark.parametrize(("name", "with_time"), CASES)
def test_fast_path_equals_reference(name: str, with_time: bool) -> None:
    torch.manual_seed(3)
    tiny = {**TINY, "dim": 8, "heads": 2, "max_len": 6}
    cfg = ModelConfig.model_validate({**tiny, "backbone": "hstu", "hstu": HSTU_SWITCHES[name]})
    model = build_model(cfg, NUM_ITEMS).eval()
    for layer in model.encoder.layers:  # make the bias tables matter at this scale
        if layer.rab is not None:
            torch.nn.init.normal_(layer.rab.pos_w, std=1.0)
            if layer.rab.time_w is not None:
                torch.nn.init.normal_(layer.rab.time_w, std=1.0)
    items, ts, lengths = random_batch(2, 6, [6, 4], seed=5)
    ts = ts if with_time else None
    with torch.no_grad():
        fast = model.encode(items, ts, lengths).double()
        slow = reference_encode(model, items, ts, lengths)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)


def test_time_buckets_edge_cases() -> None:
    dt = torch.tensor([0, 1, -1, 2, -2, 3, 10**4, -(10**4), 10**12, 10**18, -(10**18)])
    expected = [0, 0, 0, 2, 2, 3, 30, 30, 91, 128, 128]
    assert time_buckets(dt).tolist() == expected
    assert time_buckets(dt).tolist() == [_bucket(int(v)) for v in dt]
    assert time_buckets(torch.tensor([10**4]), num_buckets=16).tolist() == [16]
    assert time_buckets(torch.tensor([100]), divisor=1.0).tolist() == [4]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_time_buckets_match_formula(dt: int) -> None:
    exact = math.log(max(abs(dt), 1)) / 0.301
    if abs(exact - round(exact)) < 1e-4:  # float32 may round across a boundary
        return
    assert int(time_buckets(torch.tensor([dt]))[0]) == _bucket(dt)


def test_query_time_is_the_next_item_time() -> None:
    ts = torch.tensor([[10, 20, 30, 0], [5, 6, 7, 8]])
    has_next = torch.arange(4)[None, :] + 1 < torch.tensor([[3], [4]])
    assert query_timestamps(ts, has_next).tolist() == [[20, 30, 30, 0], [6, 7, 8, 8]]


def test_relative_position_index_matches_official_layout() -> None:
    """generative-recommenders builds the [N, N] bias by padding/repeating the 2N-1 table."""
    n = 5
    cfg = ModelConfig.model_validate({**TINY, "backbone": "hstu", "max_len": n})
    model = build_model(cfg, NUM_ITEMS)
    w = model.encoder.layers[0].rab.pos_w.detach()
    t = F.pad(w[: 2 * n - 1], [0, n]).repeat(n)
    t = t[..., :-n].reshape(1, n, 3 * n - 2)
    r = (2 * n - 1) // 2
    official = t[..., r:-r]
    ours = model.encoder.layers[0].rab(relative_positions(n, n, w.device), None)
    torch.testing.assert_close(ours, official)


def test_without_timestamps_only_the_position_bias_is_used_and_nothing_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = ModelConfig.model_validate({**TINY, "backbone": "hstu"})
    model = build_model(cfg, NUM_ITEMS).eval()
    items, _, lengths = random_batch(2, 4, [4, 2])
    with caplog.at_level(logging.DEBUG, logger="recscale.models.hstu"):
        before = model.encode(items, None, lengths)
        time_tables = [p for n, p in model.named_parameters() if "time" in n]
        assert time_tables
        with torch.no_grad():
            for p in time_tables:
                p.add_(1.0)
        after = model.encode(items, None, lengths)
    torch.testing.assert_close(before, after, rtol=0, atol=0)
    assert caplog.records == []
