"""The fused SiLU attention against the plain expression: values and gradients."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.models import ModelConfig, build_model
from recscale.models.hstu_attention import silu_attention, silu_attention_reference
from tests.models.model_cases import HSTU_SWITCHES, NUM_ITEMS, TINY, random_batch

TOLERANCE = {
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
    torch.float32: {"rtol": 1e-4, "atol": 1e-5},
}


@st.composite
def attention_inputs(draw: st.DrawFn, dtype: torch.dtype) -> dict[str, Any]:
    batch, heads = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(1, 40))
    dqk, dv = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    max_len = draw(st.integers(n, 2 * n))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))

    def randn(*shape: int, std: float = 1.0) -> torch.Tensor:
        return (std * torch.randn(*shape, generator=g, dtype=dtype)).requires_grad_()

    # q, k, v either contiguous or strided views of one projection, as HSTULayer makes them.
    if draw(st.booleans()):
        q, k, v = (
            randn(batch, heads, n, dqk),
            randn(batch, heads, n, dqk),
            randn(batch, heads, n, dv),
        )
    else:
        z = randn(batch, n, heads * (2 * dqk + dv))
        qz, kz, vz = z.split([heads * dqk, heads * dqk, heads * dv], dim=-1)
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (qz, kz, vz))
    bias_rows = draw(st.sampled_from([None, 1, batch]))  # none, position rab, position+time rab
    bias = None if bias_rows is None else randn(bias_rows, n, n, std=2.0)
    return {
        "q": q,
        "k": k,
        "v": v,
        "bias": bias,
        "scale": 1.0 / max_len if draw(st.booleans()) else 1.0,  # scale_by_n on / off
        "query_block": draw(st.integers(1, n + 3)),
        "tile_elements": draw(st.sampled_from([None, 0, 1, 50, 1000])),
    }


def _check_against_reference(inputs: dict[str, Any], dtype: torch.dtype) -> None:
    q, k, v, bias, scale = (inputs[key] for key in ("q", "k", "v", "bias", "scale"))
    n = q.shape[2]
    weight = torch.ones(n, n, dtype=dtype).tril() * scale
    leaves = [t for t in (q, k, v, bias) if t is not None]
    expected = silu_attention_reference(q, k, v, bias, weight)
    grad = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, leaves, grad)
    got = silu_attention(
        q, k, v, bias, scale, inputs["query_block"], tile_elements=inputs["tile_elements"]
    )
    got_grads = torch.autograd.grad(got, leaves, grad)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got, expected, **tol)
    for name, a, b in zip(["q", "k", "v", "bias"], got_grads, expected_grads, strict=False):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, **tol, msg=lambda m, name=name: f"d{name}: {m}")


@settings(max_examples=80, deadline=None)
@given(attention_inputs(torch.float64))
def test_fused_equals_reference_float64(inputs: dict[str, Any]) -> None:
    _check_against_reference(inputs, torch.float64)


@settings(max_examples=40, deadline=None)
@given(attention_inputs(torch.float32))
def test_fused_equals_reference_float32(inputs: dict[str, Any]) -> None:
    _check_against_reference(inputs, torch.float32)


@settings(max_examples=60, deadline=None)
@given(attention_inputs(torch.float64), st.data())
def test_fused_skips_the_keys_before_each_segment(inputs: dict[str, Any], data) -> None:
    """Packed rows: with key_starts the kernel skips every key before a query's segment; the
    masking bias removes the rest. Values and gradients equal the reference's under the
    segment mask."""
    from recscale.models.attention import MASKED_SCORE

    q, k, v, scale = (inputs[key] for key in ("q", "k", "v", "scale"))
    batch, n = q.shape[0], q.shape[2]
    segments = torch.zeros(batch, n, dtype=torch.long)
    for b in range(batch):  # random cut points: segment ids rise along the row
        cuts = data.draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=4, unique=True))
        for c in cuts:
            segments[b, c:] += 1
    starts = torch.stack([torch.searchsorted(row, row) for row in segments])  # first index
    same = (segments[:, :, None] == segments[:, None, :]) & torch.ones(n, n).tril().bool()
    rab = inputs["bias"]
    rab = torch.zeros(batch, n, n, dtype=q.dtype) if rab is None else rab.expand(batch, n, n)
    blocked = torch.zeros(batch, n, n, dtype=q.dtype).masked_fill(~same, MASKED_SCORE)
    leaves = [t for t in (q, k, v, inputs["bias"]) if t is not None]
    expected = silu_attention_reference(q, k, v, rab, same[:, None].to(q.dtype) * scale)
    grad = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, leaves, grad)
    got = silu_attention(
        q, k, v, rab + blocked, scale, inputs["query_block"], inputs["tile_elements"], starts
    )
    got_grads = torch.autograd.grad(got, leaves, grad)
    tol = TOLERANCE[torch.float64]
    torch.testing.assert_close(got, expected, **tol)
    for a, b in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_bias_without_grad_and_default_tiles() -> None:
    """A bias that needs no gradient gets none; the CPU default tiles cover N past a block."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 150, 8, generator=g, requires_grad=True) for _ in range(3))
    bias = torch.randn(3, 150, 150, generator=g)
    weight = torch.ones(150, 150).tril() / 150
    got = silu_attention(q, k, v, bias, 1 / 150)
    torch.testing.assert_close(got, silu_attention_reference(q, k, v, bias, weight))
    got.sum().backward()
    assert bias.grad is None and q.grad is not None


def test_autocast_bf16_runs_in_bf16_and_stays_close() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 70, 8, generator=g, requires_grad=True) for _ in range(3))
    bias = (0.1 * torch.randn(2, 70, 70, generator=g)).requires_grad_()
    weight = torch.ones(70, 70).tril() / 70
    expected = silu_attention_reference(q, k, v, bias, weight)
    expected_grads = torch.autograd.grad(expected.sum(), (q, k, v, bias))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = silu_attention(q, k, v, bias, 1 / 70)
    assert got.dtype == torch.bfloat16
    got_grads = torch.autograd.grad(got.float().sum(), (q, k, v, bias))
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.02)
    assert got_grads[3].dtype == torch.float32  # the bias and its gradient keep their dtype
    for a, b in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.05)


def test_fused_is_the_default() -> None:
    assert ModelConfig().hstu.attention_impl == "fused"
    with pytest.raises(ValueError):
        ModelConfig.model_validate({"hstu": {"attention_impl": "triton"}})


def _model_pair(switches: dict[str, Any]):
    models = []
    for impl in ("reference", "fused"):
        cfg = ModelConfig.model_validate(
            {**TINY, "backbone": "hstu", "hstu": {**switches, "attention_impl": impl}}
        )
        torch.manual_seed(0)
        model = build_model(cfg, NUM_ITEMS).double()
        for layer in model.encoder.layers:  # make the bias tables matter at this scale
            if layer.rab is not None:
                torch.nn.init.normal_(layer.rab.pos_w, std=1.0)
                if layer.rab.time_w is not None:
                    torch.nn.init.normal_(layer.rab.time_w, std=1.0)
        models.append(model)
    models[1].load_state_dict(models[0].state_dict())
    return models


@pytest.mark.parametrize("name", sorted(HSTU_SWITCHES))
@pytest.mark.parametrize("with_time", [True, False])
@settings(max_examples=4, deadline=None)
@given(
    lengths=st.lists(st.integers(1, TINY["max_len"]), min_size=1, max_size=3),
    n_extra=st.integers(0, 2),
    seed=st.integers(0, 1000),
)
def test_model_outputs_and_gradients_match(
    name: str, with_time: bool, lengths: list[int], n_extra: int, seed: int
) -> None:
    """Right-padded batches of random lengths, padded to up to max_len."""
    reference, fused = _model_pair(HSTU_SWITCHES[name])
    n = min(max(lengths) + n_extra, TINY["max_len"])
    items, ts, lens = random_batch(len(lengths), n, lengths, seed=seed)
    ts = ts if with_time else None
    valid = (torch.arange(n)[None, :] < lens[:, None]).unsqueeze(-1)
    weights = torch.randn(len(lengths), n, TINY["dim"], dtype=torch.float64) * valid
    outputs, grads = [], []
    for model in (reference, fused):
        hidden = model.encode(items, ts, lens)
        (hidden * weights).sum().backward()  # padded positions carry no loss
        outputs.append(hidden * valid)
        grads.append({k: p.grad for k, p in model.named_parameters() if p.grad is not None})
    # Not 1e-10: the reference path's 1/n weight is a float32 tensor (HSTU.forward's
    # silu_weight), so in float64 the paths differ by float32 rounding of 1/n (~1e-8
    # relative, grown through the layers); with scale_by_n off they agree to 1e-16.
    _assert_close_to_scale(outputs[1], outputs[0], "hidden")
    assert grads[1].keys() == grads[0].keys()
    for key, g in grads[0].items():
        _assert_close_to_scale(grads[1][key], g, key)


def _assert_close_to_scale(got: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Largest difference within 1e-6 of the tensor's largest entry."""
    error = (got - expected).abs().max().item()
    assert error <= 1e-6 * expected.abs().max().item() + 1e-15, f"{name}: max |diff| {error:.3g}"
