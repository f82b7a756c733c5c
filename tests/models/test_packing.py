"""Packed batches: each user's hidden states, loss and gradients equal the padded batch's."""

from __future__ import annotations

import pytest
import torch

from recscale.data.batching import train_batches
from recscale.data.synthetic import markov_mixture
from recscale.models import build_model
from recscale.models.attention import packed_attend
from recscale.models.encoder import packing_backbones

from .model_cases import HSTU_SWITCHES, VARIANTS, config

PACKABLE = [name for name, case in VARIANTS.items() if case["backbone"] in packing_backbones()]
MAX_LEN = 12


def _batches(seed: int):
    # Short users (mean 5 interactions) beside some longer than max_len: rows hold 2-5 users.
    ds, _ = markov_mixture(40, 30, mean_length=5.0, seed=seed, mean_gap_s=3_600.0)
    padded = next(train_batches(ds, MAX_LEN, 16, seed, 0))
    packed = next(train_batches(ds, MAX_LEN, 16, seed, 0, pack=True))
    return padded, packed


def _per_user(batch, values: torch.Tensor) -> dict[tuple[int, ...], torch.Tensor]:
    """Each user's rows of ``values`` [B, N, ...], keyed by its (unique) timestamps."""
    out = {}
    for row in range(batch.items.shape[0]):
        segs = batch.segments[row] if batch.segments is not None else None
        ids = range(1, int(segs.max()) + 1) if segs is not None else [None]
        for s in ids:
            where = (
                (segs == s)
                if s is not None
                else torch.arange(batch.items.shape[1]) < int(batch.lengths[row])
            )
            out[tuple(batch.timestamps[row, where].tolist())] = values[row, where]
    return out


def _loss(model, batch, attend):
    hidden = model.encode(batch.items, batch.timestamps, batch.lengths, None, attend)
    logits = model.logits(hidden)
    keep = batch.targets != 0
    loss = torch.nn.functional.cross_entropy(logits[keep], batch.targets[keep], reduction="sum")
    return hidden, loss


@pytest.mark.parametrize("name", PACKABLE)
def test_packed_batch_equals_padded_batch(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(config(name, max_len=MAX_LEN), 30).double()
    padded, packed = _batches(seed=1)
    assert packed.items.shape[0] < padded.items.shape[0]  # it packed something
    assert int((packed.segments > 0).sum()) == int(padded.lengths.sum())
    grads = []
    hiddens = []
    for batch in (padded, packed):
        model.zero_grad()
        attend = None if batch.segments is None else packed_attend(batch.segments, batch.positions)
        hidden, loss = _loss(model, batch, attend)
        loss.backward()
        hiddens.append(_per_user(batch, hidden.detach()))
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert hiddens[0].keys() == hiddens[1].keys()
    for user, h in hiddens[0].items():
        torch.testing.assert_close(hiddens[1][user], h, rtol=1e-9, atol=1e-9)
    assert len(grads[0]) == len(grads[1])
    for g_padded, g_packed in zip(*grads, strict=True):
        torch.testing.assert_close(g_packed, g_padded, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_packed_hstu_reads_time_gaps_within_each_user(impl: str) -> None:
    # position_time rab: the time bias of a packed row must use each user's own next item.
    torch.manual_seed(0)
    cfg = config("hstu", max_len=MAX_LEN, hstu={**HSTU_SWITCHES["hstu"], "attention_impl": impl})
    assert cfg.hstu.rab == "position_time"
    model = build_model(cfg, 30).double()
    padded, packed = _batches(seed=2)
    attend = packed_attend(packed.segments, packed.positions)
    want = _per_user(padded, _loss(model, padded, None)[0].detach())
    got = _per_user(packed, _loss(model, packed, attend)[0].detach())
    for user, h in want.items():
        torch.testing.assert_close(got[user], h, rtol=1e-9, atol=1e-9)
    # And the time bias matters: without timestamps the states differ.
    hidden = model.encode(packed.items, None, packed.lengths, None, attend).detach()
    assert not torch.allclose(hidden, _loss(model, packed, attend)[0].detach())
