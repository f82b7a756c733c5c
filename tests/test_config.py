from pathlib import Path

import pytest

from recscale.config import StrictModel, apply_overrides, load_yaml, merge, validate
from recscale.errors import RecscaleError


class Inner(StrictModel):
    layers: int = 2
    kind: str = "hstu"


class Outer(StrictModel):
    model: Inner = Inner()
    seed: int = 0


def test_overrides_parse_yaml_values_and_create_sections():
    data = apply_overrides({"model": {"layers": 2}}, ["model.layers=8", "seed=3", "extra.a.b=x"])
    assert data == {"model": {"layers": 8}, "seed": 3, "extra": {"a": {"b": "x"}}}


def test_override_without_equals_is_a_user_error():
    with pytest.raises(RecscaleError, match=r"key\.sub=value"):
        apply_overrides({}, ["model.layers"])


def test_unknown_key_names_key_and_allowed_fields():
    with pytest.raises(RecscaleError) as err:
        validate(Outer, {"model": {"layrs": 4}}, source="run.yaml")
    msg = str(err.value)
    assert "run.yaml" in msg and "model.layrs" in msg and "kind, layers" in msg


def test_bad_value_names_key_and_input():
    with pytest.raises(RecscaleError, match=r"model.layers.*'many'"):
        validate(Outer, {"model": {"layers": "many"}})


def test_merge_is_recursive_and_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}}
    out = merge(base, {"a": {"c": 3}})
    assert out == {"a": {"b": 1, "c": 3}} and base == {"a": {"b": 1, "c": 2}}


def test_load_yaml_reports_line_of_syntax_error(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: [1, 2\n")
    with pytest.raises(RecscaleError, match=r"bad.yaml:\d+"):
        load_yaml(path)


def test_run_config_names_the_missing_behaviour_source_and_bad_feature_kinds():
    from recscale.train import load_run_config

    with pytest.raises(RecscaleError, match=r"data\.behaviour"):
        load_run_config(overrides=["model.predict_behaviour=true"])
    with pytest.raises(RecscaleError, match="item_features"):
        load_run_config(overrides=["data.item_features=[colour]"])
    cfg = load_run_config(overrides=["data.behaviour=rating", "model.predict_behaviour=true"])
    assert cfg.model.predict_behaviour
