import json
import re

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


def _saved_twice(tmp_path):
    """``last`` (epoch 2) with ``previous`` (epoch 1) beside it."""
    model, _ = _trained_optimizer()
    last, previous = tmp_path / "last", tmp_path / "previous"
    ckpt.save_checkpoint(last, model, {"epoch": 1}, {"x": torch.ones(2)}, previous)
    ckpt.save_checkpoint(last, model, {"epoch": 2}, {"x": torch.ones(2)}, previous)
    return last, previous


def test_each_file_carries_its_checksum_and_the_one_before_is_kept(tmp_path):
    last, previous = _saved_twice(tmp_path)
    meta = json.loads((last / "state.json").read_text())
    assert set(meta["sha256"]) == {"model.safetensors", "state.safetensors"}
    assert ckpt.load_checkpoint(previous)[1] == {"epoch": 1}
    assert ckpt.load_checkpoint(last, previous)[1] == {"epoch": 2}


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "model.safetensors").write_bytes(b"\0" * 50),
        lambda d: (d / "state.safetensors").write_bytes(b"\0" * 64),
        lambda d: (d / "state.json").write_text('{"epoch": 2, "sha'),
        lambda d: (d / "model.safetensors").unlink(),
    ],
    ids=["truncated-weights", "zeroed-state", "torn-json", "missing-weights"],
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path, damage):
    last, previous = _saved_twice(tmp_path)
    damage(last)
    with pytest.warns(ckpt.CheckpointWarning, match=re.escape(str(last))):
        used, (_, state, tensors) = ckpt.load_verified(last, previous)
    assert used == previous and state == {"epoch": 1} and torch.equal(tensors["x"], torch.ones(2))
    with pytest.raises(ckpt.CorruptCheckpoint, match="no intact checkpoint"):
        ckpt.load_checkpoint(last)  # without a previous one to fall back to
    assert issubclass(ckpt.CorruptCheckpoint, RecscaleError)


def test_checkpoints_from_before_checksums_still_load(tmp_path):
    model, _ = _trained_optimizer()
    ckpt.save_checkpoint(tmp_path / "c", model, {"epoch": 4}, {})
    meta = json.loads((tmp_path / "c" / "state.json").read_text())
    del meta["sha256"]
    (tmp_path / "c" / "state.json").write_text(json.dumps(meta))
    assert ckpt.load_checkpoint(tmp_path / "c")[1] == {"epoch": 4}
    (tmp_path / "c" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(RecscaleError, match="not a readable safetensors file"):
        ckpt.load_checkpoint(tmp_path / "c")


def test_a_failed_write_is_a_user_error_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    last, previous = _saved_twice(tmp_path)

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt, "write_durably", disk_full)
    model, _ = _trained_optimizer()
    with pytest.raises(RecscaleError, match=r"No space left on device.*intact"):
        ckpt.save_checkpoint(last, model, {"epoch": 3}, {}, previous)
    assert ckpt.load_checkpoint(last, previous)[1] == {"epoch": 2}
    assert not (tmp_path / "last.tmp").exists()
