"""The floored softmax primitives against torch's exact ones."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.numerics import EXP_FLOOR, logsumexp, shifted_exp_


@settings(max_examples=50, deadline=None)
@given(
    spread=st.floats(1e-3, 1e4),
    shift=st.floats(-1e3, 1e3),
    width=st.integers(1, 300),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1.0, 20.0, 0.3]),
)
def test_logsumexp_equals_torch_over_any_spread(spread, shift, width, seed, scale) -> None:
    g = torch.Generator().manual_seed(seed)
    x = shift + spread * torch.randn(4, width, generator=g)
    before = x.clone()
    expected = torch.logsumexp(x * scale, dim=-1)
    torch.testing.assert_close(logsumexp(x, scale), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(x, before), "logsumexp must not change its input"


def test_shifted_exp_floors_only_terms_below_the_floor() -> None:
    s = torch.tensor([[0.0, -1.0, -79.0, -81.0, -500.0, -torch.inf]])
    e = shifted_exp_(s.clone(), s.amax(1, keepdim=True))
    torch.testing.assert_close(e[0, :3], s[0, :3].exp(), rtol=1e-6, atol=0)
    floor = torch.tensor(EXP_FLOOR).exp()
    assert torch.equal(e[0, 3:], floor.expand(3)), "terms below the floor become exp(floor)"
    assert floor < 1e-34


def test_logsumexp_keeps_nan() -> None:
    assert logsumexp(torch.tensor([0.0, float("nan")])).isnan()
