"""End-to-end trainer behaviour on a small sequence file: learning, resume, run records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from recscale.train import load_run_config, train


def write_sequences(path: Path, users: int = 60, items: int = 30, seed: int = 0) -> Path:
    """A sasrec-format file whose users walk a cycle of items (learnable next-item structure)."""
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, users + 1):
        start, length = rng.integers(1, items + 1), rng.integers(6, 15)
        for t in range(length):
            lines.append(f"{user} {(start + t - 1) % items + 1}")
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_config(data_file: Path, *extra: str):
    return load_run_config(
        overrides=[
            f"data.path={data_file}",
            "data.format=sasrec",
            "data.name=null",
            "model.backbone=hstu",
            "model.dim=16",
            "model.layers=1",
            "model.heads=1",
            "model.max_len=12",
            "model.dropout=0.1",
            "model.emb_dropout=0.1",
            "loss.name=sampled_softmax",
            "loss.num_negatives=8",
            "train.batch_size=16",
            "train.epochs=2",
            "train.progress=false",
            "train.device=cpu",
            "eval.protocol=full",
            "eval.ks=[1,5,10]",
            "eval.track_test=true",
            *extra,
        ]
    )


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_sequences(tmp_path / "cycle.txt")


def test_run_directory_holds_config_metrics_checkpoints_and_facts(tmp_path, data_file):
    result = train(tiny_config(data_file), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "final.json", "dataset.json"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last" / "model.safetensors").is_file()
    assert (run / "checkpoints" / "best" / "model.safetensors").is_file()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    final = result.final
    assert final["protocol"] == "full" and final["selection"] == "best-valid-then-test"
    assert "test_legacy_best_epoch" in final
    facts = final["facts"]
    assert facts["non_embedding_params"] > 0 and facts["embedding_params"] > 0
    assert facts["tokens"] == lines[-1]["tokens"] > 0
    assert facts["compute_flops"] == facts["flops_per_token_training"] * facts["tokens"]
    assert 0.0 <= final["test"]["hr@10"] <= 1.0 and final["test"]["loss"] > 0


# Each loss on its own: a loss whose value matches its reference can still fail to train
# (gSASRec's gBCE at 256 of 3,416 negatives stays at popularity on ML-1M for 21 epochs).
@pytest.mark.parametrize(
    "loss",
    [
        ["loss.name=sampled_softmax"],
        ["loss.name=bce"],
        ["loss.name=gbce", "loss.gbce_t=0.75"],  # tiny_config's 8 negatives of 30 items
        ["loss.name=full_softmax"],
    ],
    ids=lambda loss: loss[0].removeprefix("loss.name="),
)
def test_training_learns_a_cyclic_pattern(tmp_path, data_file, loss):
    cfg = tiny_config(
        data_file,
        *loss,
        "train.epochs=30",
        "optim.lr=0.01",
        "train.patience=null",
        "model.dropout=0.0",
        "model.emb_dropout=0.0",
        "eval.track_test=false",
    )
    final = train(cfg, tmp_path / "run").final
    # 30 items: a random ranking gives HR@1 about 1/28; the cycle is fully predictable.
    assert final["test"]["hr@1"] > 0.5


def test_resume_after_one_epoch_gives_identical_weights(tmp_path, data_file):
    straight = tmp_path / "straight"
    train(tiny_config(data_file), straight)
    split_run = tmp_path / "split"
    train(tiny_config(data_file, "train.epochs=1"), split_run)
    train(tiny_config(data_file), split_run, resume=True)
    a = load_file(str(straight / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(split_run / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key
    metrics = [json.loads(x) for x in (split_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]


def test_token_budget_stops_training(tmp_path, data_file):
    final = train(
        tiny_config(data_file, "train.epochs=50", "train.max_tokens=300"), tmp_path / "r"
    ).final
    assert 300 <= final["facts"]["tokens"] < 300 + 16 * 12
    assert final["stop_reason"] == "token budget reached"


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    # 64 users: batches of 16 split exactly into pairs of batches of 8.
    data_file = write_sequences(tmp_path / "seq.txt", users=64)
    common = [
        "train.epochs=1",
        "model.dropout=0.0",
        "model.emb_dropout=0.0",
        "loss.name=full_softmax",
    ]
    train(tiny_config(data_file, *common, "train.batch_size=16"), tmp_path / "big")
    train(
        tiny_config(data_file, *common, "train.batch_size=8", "optim.grad_accum=2"),
        tmp_path / "acc",
    )
    a = load_file(str(tmp_path / "big" / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "acc" / "checkpoints" / "last" / "model.safetensors"))
    for key in a:
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-4, atol=1e-6)


def test_side_information_and_behaviours_train_and_reload_on_real_data(tmp_path, mirror):
    """ML-100K genres fused into item vectors, ratings as a behaviour input and an auxiliary
    target: the data fills the model fields, and a reloaded run scores exactly the same."""
    from recscale.train.runs import evaluate_run, load_run

    cfg = load_run_config(
        overrides=[
            "data.name=ml-100k",
            "data.item_features=[attributes]",
            "data.behaviour=rating",
            "model.backbone=sasrec",
            "model.dim=16",
            "model.layers=1",
            "model.heads=1",
            "model.max_len=20",
            "model.predict_behaviour=true",
            "loss.name=sampled_softmax",
            "loss.num_negatives=16",
            "train.batch_size=64",
            "train.epochs=1",
            "train.max_tokens=4000",
            "train.progress=false",
            "train.device=cpu",
            "eval.ks=[10]",
        ]
    )
    result = train(cfg, tmp_path / "run")
    saved = load_run_config(tmp_path / "run" / "config.yaml").model
    assert saved.num_item_features == 19  # the genres of u.genre that label some movie
    assert saved.behaviour_levels == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert result.final["facts"]["embedding_params"] == (1682 + 1 + 19 + 1 + 5 + 1) * 16 + 20 * 16
    run = load_run(tmp_path / "run")
    assert run.model.item_features.any()
    again = evaluate_run(tmp_path / "run")["metrics"]
    assert again["hr@10"] == pytest.approx(result.final["test"]["hr@10"], abs=1e-12)
    assert again["loss"] == pytest.approx(result.final["test"]["loss"], rel=1e-6)


def test_init_from_starts_where_another_run_ended_and_refuses_a_different_model(
    tmp_path, data_file
):
    from recscale.errors import RecscaleError

    fast = ("optim.lr=0.01", "model.dropout=0.0", "model.emb_dropout=0.0")
    first = train(tiny_config(data_file, "train.epochs=15", *fast), tmp_path / "a")
    scratch = train(tiny_config(data_file, "train.epochs=1", *fast), tmp_path / "b")
    tuned = train(
        tiny_config(data_file, "train.epochs=1", *fast, f"train.init_from={tmp_path / 'a'}"),
        tmp_path / "c",
    )

    def first_loss(run: Path) -> float:
        return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["train_loss"]

    # Fine-tuning begins at the pretrained model's level, far below a fresh start.
    assert first_loss(tmp_path / "c") < first_loss(tmp_path / "b") - 0.5
    assert tuned.final["test"]["hr@1"] > 0.3 > scratch.final["test"]["hr@1"]
    assert first.final["test"]["hr@1"] > 0.3
    with pytest.raises(RecscaleError, match="shape mismatch"):
        train(
            tiny_config(data_file, "model.dim=8", f"train.init_from={tmp_path / 'a'}"),
            tmp_path / "d",
        )


def test_length_bucketed_batches_train_on_the_same_targets(tmp_path: Path):
    data = write_sequences(tmp_path / "cycle.txt", users=61)
    plain = train(tiny_config(data), tmp_path / "plain").final
    bucketed = train(tiny_config(data, "train.bucket_batches=2"), tmp_path / "bucketed").final
    assert bucketed["facts"]["tokens"] == plain["facts"]["tokens"]
    assert bucketed["facts"]["steps"] == plain["facts"]["steps"]
    assert bucketed["test"]["hr@10"] > 0.3  # it learns the cycles (chance is 10/30)


def test_packed_batches_train_the_same_run(tmp_path: Path):
    # Without dropout and with full softmax the packed step computes the padded step's loss
    # and gradients (up to summation order), so the runs agree.
    data = write_sequences(tmp_path / "cycle.txt", users=61)
    exact = ("model.dropout=0", "model.emb_dropout=0", "loss.name=full_softmax")
    plain = train(tiny_config(data, *exact), tmp_path / "plain").final
    packed = train(tiny_config(data, *exact, "train.pack_batches=true"), tmp_path / "pk").final
    assert packed["facts"]["tokens"] == plain["facts"]["tokens"]
    assert packed["facts"]["steps"] == plain["facts"]["steps"]
    for metric, value in plain["test"].items():
        assert packed["test"][metric] == pytest.approx(value, rel=1e-4, abs=1e-6), metric


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("model.backbone=gpt",), "cannot keep packed users apart"),
        (("train.bucket_batches=2",), "not both"),
        (("loss.sharing=sequence",), "allowed with packing"),
    ],
)
def test_packed_batches_refuse_what_they_cannot_pack(tmp_path: Path, extra, says):
    with pytest.raises(Exception, match=says):
        tiny_config(tmp_path / "x.txt", "train.pack_batches=true", *extra)


def test_item_text_from_a_users_item_table_trains_and_reloads(tmp_path, data_file):
    """data.item_features [text] with a CSV item table: the embeddings fill the model's text
    buffer for the items that have text, and a reloaded run scores exactly the same."""
    from recscale.train.runs import evaluate_run, load_run

    items = tmp_path / "items.csv"
    rows = [f"{i},Item number {i},{'red' if i % 2 else 'blue'} colour" for i in range(1, 26)]
    items.write_text("item_id,title,tags\n" + "\n".join(rows) + "\n")  # items 26-30: no text
    cfg = tiny_config(
        data_file,
        "data.item_features=[text]",
        f"data.text_path={items}",
        "data.text_id=item_id",
        "data.text_columns=[title,tags]",
    )
    result = train(cfg, tmp_path / "run")
    saved = load_run_config(tmp_path / "run" / "config.yaml").model
    assert saved.text_dim == 384
    run = load_run(tmp_path / "run")
    text = run.model.item_text
    raw = run.dataset.item_ids
    has_text = np.array([bool(r) and int(r) <= 25 for r in raw])
    assert (text[has_text].norm(dim=1) > 0.99).all() and (text[~has_text] == 0).all()
    again = evaluate_run(tmp_path / "run")["metrics"]
    assert again["hr@10"] == pytest.approx(result.final["test"]["hr@10"], abs=1e-12)
