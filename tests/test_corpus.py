"""Every malformed input in ``tests/corpus/cases.yaml`` is refused by the real CLI with exit
code 2 and one line naming what is wrong and where, before any training step."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.cli_harness import assert_one_line_error, run_cli, working_directory

CORPUS = Path(__file__).parent / "corpus"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())
PARAMS = [
    pytest.param(case, id=f"{category}/{case['id']}")
    for category, cases in CASES.items()
    for case in cases
]


def test_the_corpus_is_large_and_covers_every_kind_of_input():
    assert len(PARAMS) >= 50
    assert set(CASES) == {"configs", "overrides", "data", "sweeps", "runs"}
    from recscale.data import format_names

    covered = {arg for case in CASES["data"] for arg in case["args"]}
    for fmt in format_names():
        assert fmt in covered or f"data.format={fmt}" in covered, fmt


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished run (one epoch), trained once; cases damage copies of it."""
    from recscale.train import load_run_config, train

    run_dir = tmp_path_factory.mktemp("corpus") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSCALE_HOME", str(tmp_path_factory.getbasetemp() / "recscale-home"))
        with working_directory(CORPUS):
            train(load_run_config("configs/base.yaml"), run_dir)
    assert (run_dir / "checkpoints" / "previous").is_dir()
    return run_dir


def damage(run: Path, steps: list[dict]) -> None:
    for step in steps:
        ((kind, arg),) = step.items()
        if kind == "write":
            ((name, data),) = arg.items()
            target = run / name
            target.write_bytes(data if isinstance(data, bytes) else data.encode())
            continue
        target = run / arg
        if kind == "delete":
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        elif kind == "truncate":
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 2])
        elif kind == "flip":
            data = bytearray(target.read_bytes())
            data[len(data) // 2] ^= 0xFF
            target.write_bytes(bytes(data))
        else:
            raise ValueError(f"unknown damage {kind!r}")


@pytest.mark.parametrize("case", PARAMS)
def test_malformed_input_is_one_line_and_exit_2(case, tmp_path, request, monkeypatch):
    values = {"tmp": str(tmp_path)}
    if any("{run}" in str(a) for a in case["args"]):
        run = tmp_path / "run"
        shutil.copytree(request.getfixturevalue("finished_run"), run)
        damage(run, case.get("damage", []))
        values["run"] = str(run)

    def no_training(*args, **kwargs):
        raise AssertionError("training started: the error was not found before work began")

    monkeypatch.setattr("recscale.train.trainer.Recipe.train_epoch", no_training)
    args = [str(a).format(**values) for a in case["args"]]
    outcome = run_cli(args, CORPUS)
    assert_one_line_error(outcome, *case["expect"])
    for made in ("r", "s"):
        assert not (tmp_path / made).exists(), f"{made} was created before the error"
