"""The run config refuses every bad value when it is loaded, naming the key and what is
allowed; the CLI corpus (tests/corpus) runs the same through the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recscale.errors import RecscaleError
from recscale.train.config import check_run_inputs, load_run_config


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("eval.select_metric=ndcg@7", ["eval.select_metric", "allowed: hr@1", "mrr"]),
        ("eval.select_metric=loss", ["eval.select_metric", "'loss'"]),
        ("optim.grad_accum=0", ["optim.grad_accum", ">= 1"]),
        ("optim.lr=-1", ["optim.lr", "greater than 0"]),
        ("optim.warmup_steps=-1", ["optim.warmup_steps"]),
        ("optim.switch_to_sgd.sgd_lr=0", ["optim.switch_to_sgd.sgd_lr"]),
        ("train.num_threads=0", ["train.num_threads"]),
        ("train.checkpoint_every_minutes=0", ["train.checkpoint_every_minutes"]),
        ("train.device=cuda:x", ["train.device", "cuda:N"]),
        ("eval.protocol=sampled-", ["eval.protocol", "sampled-N"]),
        ("loss.name=nope", ["loss.name", "sampled_softmax"]),
        ("data.split=nope", ["data.split", "temporal"]),
        ("seed=4294967296", ["seed"]),
        ("data.domains=[amazon-beauty]", ["data.domains needs merged datasets"]),
    ],
)
def test_bad_values_name_the_key(override, fragments):
    with pytest.raises(RecscaleError) as err:
        load_run_config(overrides=[override])
    message = str(err.value).replace("greater than or equal to", ">=")
    for fragment in fragments:
        assert fragment in message


def test_select_metric_follows_ks():
    cfg = load_run_config(overrides=["eval.ks=[3]", "eval.select_metric=hr@3"])
    assert cfg.eval.select_metric == "hr@3"
    assert load_run_config(overrides=["eval.select_metric=mrr"]).eval.select_metric == "mrr"


def test_paths_are_checked_before_a_run_starts(tmp_path):
    data = tmp_path / "seqs.txt"
    sets = [f"data.path={data}", "data.format=sasrec"]
    with pytest.raises(RecscaleError, match=r"data\.path: .*seqs\.txt: no such file"):
        load_run_config(overrides=sets, paths=True)
    with pytest.raises(RecscaleError, match=r"data\.path: .*seqs\.txt: no such file"):
        check_run_inputs(load_run_config(overrides=sets))
    data.write_text("1 2\n1 3\n")
    # A sweep names runs that earlier points will create: init_from waits for the run start.
    cfg = load_run_config(overrides=[*sets, f"train.init_from={tmp_path}/a"], paths=True)
    with pytest.raises(RecscaleError, match=r"train\.init_from"):
        check_run_inputs(cfg)


@pytest.mark.integration
def test_a_users_own_s3rec_file_with_a_time_file_reads_as_the_registered_dataset(mirror: Path):
    """data.path + data.time_path go through the same resolver and reader as the registered
    Amazon Beauty, so a user's own Amazon-style data gets timestamps (and HSTU's time bias)."""
    from recscale.data import load_dataset
    from recscale.train.data import load_source

    beauty = mirror / "amazon-beauty"
    cfg = load_run_config(
        overrides=[
            f"data.path={beauty / 'Beauty.txt'}",
            "data.format=s3rec",
            f"data.time_path={beauty / 'Beauty_time.txt'}",
        ]
    )
    own, registered = load_source(cfg.data), load_dataset("amazon-beauty")
    assert own.timestamps is not None
    assert np.array_equal(own.items, registered.items)
    assert np.array_equal(own.timestamps, registered.timestamps)
    assert [s["role"] for s in own.recipe["sources"]] == ["interactions", "times"]
