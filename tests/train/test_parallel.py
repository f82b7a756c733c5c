"""``train.parallelism``: FSDP2 on one process trains like the replicated model, and its
sharded checkpoints resume exactly (the multi-rank cases run under torchrun in
``test_distributed``)."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from recscale.errors import RecscaleError
from recscale.train import load_run_config, train
from recscale.train.config import TrainConfig
from recscale.train.parallel import PARALLELISMS
from recscale.train.state import TrainState, check_resume_position
from tests.train.test_trainer import tiny_config, write_sequences

# No dropout and the full softmax: nothing random differs between the two paths.
EXACT = (
    "model.dropout=0",
    "model.emb_dropout=0",
    "loss.name=full_softmax",
    "model.layers=2",
    "train.batch_size=8",
)


def best_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "best" / "model.safetensors"))


def assert_same_run(a: dict, b: dict, rel: float = 1e-5) -> None:
    assert a["facts"]["steps"] == b["facts"]["steps"]
    assert a["best_epoch"] == b["best_epoch"]
    for part in ("valid", "test"):
        for key, value in a[part].items():
            assert b[part][key] == pytest.approx(value, rel=rel, abs=1e-7), (part, key)


def test_fsdp_on_one_process_trains_like_replicate(tmp_path: Path):
    data = write_sequences(tmp_path / "cycle.txt", users=61)
    plain = train(tiny_config(data, *EXACT), tmp_path / "replicate").final
    sharded = train(tiny_config(data, *EXACT, "train.parallelism=fsdp"), tmp_path / "fsdp").final
    assert_same_run(plain, sharded)
    a, b = best_weights(tmp_path / "replicate"), best_weights(tmp_path / "fsdp")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_sharded_checkpoint_resumes_to_the_same_run(tmp_path: Path):
    data = write_sequences(tmp_path / "cycle.txt", users=61)
    fsdp = (*EXACT, "train.parallelism=fsdp")
    whole = train(tiny_config(data, *fsdp, "train.epochs=2"), tmp_path / "whole").final

    train(tiny_config(data, *fsdp, "train.epochs=1"), tmp_path / "split")
    last = tmp_path / "split" / "checkpoints" / "last"
    meta = json.loads((last / "state.json").read_text())
    assert meta["layout"] == "sharded" and meta["world_size"] == 1
    assert sorted(meta["sha256"]) == sorted(
        f"shards/{p.name}" for p in (last / "shards").glob("*.safetensors")
    )
    resumed = train(
        tiny_config(data, *fsdp, "train.epochs=2"), tmp_path / "split", resume=True
    ).final
    assert_same_run(whole, resumed, rel=1e-6)


def test_a_checkpoint_resumes_only_under_the_parallelism_that_wrote_it(tmp_path: Path):
    data = write_sequences(tmp_path / "cycle.txt", users=40)
    train(tiny_config(data, *EXACT, "train.epochs=1", "train.parallelism=fsdp"), tmp_path / "f")
    with pytest.raises(RecscaleError, match=r"train\.parallelism=fsdp"):
        train(tiny_config(data, *EXACT, "train.epochs=2"), tmp_path / "f", resume=True)
    train(tiny_config(data, *EXACT, "train.epochs=1"), tmp_path / "r")
    with pytest.raises(RecscaleError, match=r"train\.parallelism=replicate"):
        cfg = tiny_config(data, *EXACT, "train.epochs=2", "train.parallelism=fsdp")
        train(cfg, tmp_path / "r", resume=True)


def test_a_mid_epoch_position_needs_the_same_global_batch(tmp_path: Path):
    check_resume_position(TrainState(micro=0, global_batch=16), 24, tmp_path)  # epoch end
    check_resume_position(TrainState(micro=3, global_batch=16), 16, tmp_path)
    check_resume_position(TrainState(micro=3, global_batch=None), 24, tmp_path)  # older runs
    with pytest.raises(RecscaleError, match="batch_size x ranks = 16"):
        check_resume_position(TrainState(micro=3, global_batch=16), 24, tmp_path)


def test_unknown_parallelism_names_the_choices():
    with pytest.raises(RecscaleError, match=r"train\.parallelism.*'replicate' or 'fsdp'"):
        load_run_config(overrides=["train.parallelism=zero3"])


def test_the_config_allows_exactly_the_registered_parallelisms():
    field = TrainConfig.model_fields["parallelism"]
    assert sorted(typing.get_args(field.annotation)) == PARALLELISMS.names()
