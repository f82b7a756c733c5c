import json

import pytest
import torch
from torch import nn

from recscale.errors import RecscaleError
from recscale.train import checkpoint as ckpt


def _trained_optimizer():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path):
    model, opt = _trained_optimizer()
    gen = torch.Generator().manual_seed(7)
    meta, tensors = ckpt.optimizer_to_flat(opt)
    tensors.update(ckpt.rng_state({"sampler": gen}))
    ckpt.save_checkpoint(tmp_path / "last", model, {"optimizer": meta, "epoch": 3}, tensors)
    expected_draw = torch.randint(0, 1000, (5,), generator=gen)

    model2 = nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.01)
    gen2 = torch.Generator().manual_seed(99)
    weights, state, tensors2 = ckpt.load_checkpoint(tmp_path / "last")
    model2.load_state_dict(weights)
    ckpt.optimizer_from_flat(opt2, state["optimizer"], tensors2)
    ckpt.restore_rng(tensors2, {"sampler": gen2})
    assert state["epoch"] == 3
    assert torch.equal(torch.randint(0, 1000, (5,), generator=gen2), expected_draw)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
        assert torch.equal(opt.state[p]["exp_avg"], opt2.state[q]["exp_avg"])


def test_interrupted_swap_falls_back_to_previous_checkpoint(tmp_path):
    model, _ = _trained_optimizer()
    ckpt.save_checkpoint(tmp_path / "last", model, {"epoch": 1}, {})
    # Simulate a crash between the two renames: only the .old copy survives.
    (tmp_path / "last").rename(tmp_path / "last.old")
    _, state, _ = ckpt.load_checkpoint(tmp_path / "last")
    assert state == {"epoch": 1}


def test_no_pickle_files_are_written(tmp_path):
    model, _ = _trained_optimizer()
    ckpt.save_checkpoint(tmp_path / "c", model, {"a": 1}, {"x": torch.ones(2)})
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["model.safetensors", "state.json", "state.safetensors"]
    json.loads((tmp_path / "c" / "state.json").read_text())


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(RecscaleError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path / "nothing")
