"""Random overrides and random bytes through the real CLI: a user error is exit code 2 and
one ``error:`` line, never a traceback; what the CLI accepts, the library accepts too.

``train --dry-run`` checks a config and the files it names without reading data or
training, so random configs stay cheap; data files go through ``data stats``. A deeper
search: ``RECSCALE_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_cli.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from recscale.errors import RecscaleError
from recscale.train.config import RunConfig, check_run_inputs, load_run_config
from tests.cli_harness import Outcome, assert_one_line_error, run_cli

CORPUS = Path(__file__).parent / "corpus"
FUZZ = settings(
    max_examples=int(os.environ.get("RECSCALE_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += dotted_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


KEYS = dotted_keys(RunConfig)
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["ndcg@7", "mrr", "cuda:3", "sampled-0", "full", "sasrec", "[1, 0]", "{}"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3)).map(lambda v: json.dumps(v))
keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=10))
overrides = st.lists(
    st.tuples(keys, values).map(lambda kv: f"{kv[0]}={kv[1]}"), min_size=1, max_size=3
)


def assert_handled(outcome: Outcome) -> None:
    """Success, or a user error said in one line; anything else is a crash."""
    if outcome.code != 0:
        assert_one_line_error(outcome)


@FUZZ
@given(sets=overrides)
def test_random_overrides_are_accepted_or_refused_in_one_line(sets, tmp_path):
    args = ["train", "configs/base.yaml", "--dry-run", "--out", str(tmp_path / "r")]
    for text in sets:
        args += ["--set", text]
    outcome = run_cli(args, CORPUS)
    assert_handled(outcome)
    # The CLI and the library agree on what is valid.
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(CORPUS)
            check_run_inputs(load_run_config("configs/base.yaml", list(sets)))
        valid = True
    except RecscaleError:
        valid = False
    assert (outcome.code == 0) == valid, outcome.stderr
    if valid:
        assert json.loads(outcome.stdout)["data"]["path"] is not None


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_as_a_config_file(data, tmp_path):
    config = tmp_path / "random.yaml"
    config.write_bytes(data)
    outcome = run_cli(["train", str(config), "--dry-run", "--out", str(tmp_path / "r")], CORPUS)
    assert_handled(outcome)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.lists(
            st.lists(st.integers(min_value=-3, max_value=9), min_size=1, max_size=5), max_size=6
        ).map(lambda rows: "\n".join(" ".join(map(str, r)) for r in rows).encode()),
    ),
    fmt=st.sampled_from(["sasrec", "s3rec", "movielens-dat", "ml-100k", "csv", "recbole"]),
)
def test_random_bytes_as_a_data_file(data, fmt, tmp_path):
    path = tmp_path / "random.data"
    path.write_bytes(data)
    outcome = run_cli(["data", "stats", str(path), "--format", fmt, "--no-quality"], CORPUS)
    assert_handled(outcome)
    if outcome.code == 2:
        assert str(path) in outcome.stderr  # names the file


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_as_a_sweep_spec(data, tmp_path):
    assume(b"name" not in data)  # a spec that names itself might be valid and start runs
    spec = tmp_path / "random.yaml"
    spec.write_bytes(data)
    outcome = run_cli(["sweep", str(spec), "--out", str(tmp_path / "s")], CORPUS)
    assert_one_line_error(outcome)
    assert not (tmp_path / "s").exists()
