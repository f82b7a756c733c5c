"""ModelConfig validation, derived values and presets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from recscale.config import validate
from recscale.errors import RecscaleError
from recscale.models import ModelConfig, preset, preset_dict, preset_names


def test_defaults_are_the_hstu_ml1m_setting() -> None:
    cfg = ModelConfig()
    assert (cfg.backbone, cfg.dim, cfg.layers, cfg.heads, cfg.max_len) == ("hstu", 50, 2, 1, 200)
    assert cfg.hstu.attention == "silu" and cfg.hstu.rab == "position_time"
    assert cfg.hstu.scale_by_n and cfg.hstu.u_gate and cfg.hstu.residual == "hstu"
    assert cfg.hstu.num_time_buckets == 128 and cfg.hstu.time_bucket_divisor == 0.301
    assert cfg.sasrec.norm == "sasrec" and cfg.sasrec.activation == "relu"
    assert cfg.tied and cfg.scoring == "dot" and not cfg.l2_norm


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"dimm": 4}, "unknown key 'dimm'"),
        ({"hstu": {"rabb": "none"}}, "unknown key 'hstu.rabb'"),
        ({"backbone": "bert"}, "known: esasrec, gpt, hstu, llama, sasrec"),
        ({"hstu": {"attention": "relu"}}, "hstu.attention"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_values_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(RecscaleError, match=r"model\.yaml") as info:
        validate(ModelConfig, data, source="model.yaml")
    assert needle in str(info.value)


def test_heads_must_divide_dim_unless_hstu_sets_head_widths() -> None:
    with pytest.raises(ValidationError, match="not divisible"):
        ModelConfig(backbone="sasrec", dim=50, heads=3)
    cfg = ModelConfig(backbone="hstu", dim=50, heads=3, qk_dim=8, v_dim=10)
    assert (cfg.head_qk_dim, cfg.head_v_dim) == (8, 10)
    # qk_dim / v_dim are HSTU options; the other backbones use dim // heads
    assert ModelConfig(backbone="gpt", dim=48, heads=4, qk_dim=5).head_qk_dim == 12


def test_rope_needs_even_head_width() -> None:
    with pytest.raises(ValidationError, match="even"):
        ModelConfig(backbone="llama", dim=30, heads=2)
    with pytest.raises(ValidationError, match="even"):
        ModelConfig(backbone="hstu", dim=30, heads=2, hstu={"rope": True})


def test_layer_dropout_schedules() -> None:
    assert ModelConfig(layers=3, dropout=0.1).layer_dropouts() == [0.1, 0.1, 0.1]
    lin = ModelConfig(layers=5, layer_dropout="linear", dropout_first=0.4, dropout_last=0.0)
    assert lin.layer_dropouts() == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.0])
    one = ModelConfig(layers=1, layer_dropout="linear", dropout_first=0.3, dropout_last=0.1)
    assert one.layer_dropouts() == [0.3]
    with pytest.raises(ValidationError, match="dropout_first"):
        ModelConfig(layer_dropout="linear", dropout_first=0.3)


def test_ffn_width_defaults_per_backbone() -> None:
    assert ModelConfig(backbone="sasrec", dim=50).ffn_dim == 50
    assert ModelConfig(backbone="gpt", dim=64, heads=4).ffn_dim == 256
    assert ModelConfig(backbone="llama", dim=48, heads=4).ffn_dim == 128
    assert ModelConfig(backbone="gpt", dim=64, heads=4, ffn_mult=2).ffn_dim == 128


def test_round_trip() -> None:
    cfg = preset("hstu-large-ml1m")
    assert ModelConfig.model_validate(cfg.model_dump()) == cfg


def test_presets_validate_and_unknown_ones_list_the_known() -> None:
    for name in preset_names():
        preset(name)
    with pytest.raises(RecscaleError, match="hstu-ml1m"):
        preset("hstu-nope")
    d = preset_dict("lsrm-98k")
    d["gpt"]["bias"] = True  # a copy: the registry is not changed
    assert preset_dict("lsrm-98k")["gpt"]["bias"] is False


def test_paper_presets() -> None:
    sas = preset("sasrec-ml1m")
    assert (sas.backbone, sas.dim, sas.layers, sas.heads, sas.dropout, sas.max_len) == (
        "sasrec",
        50,
        2,
        1,
        0.2,
        200,
    )
    large = preset("hstu-large-ml1m")
    assert (large.layers, large.heads, large.head_qk_dim, large.head_v_dim) == (8, 2, 25, 25)
    assert large.scoring == "cosine" and large.temperature == 0.05 and large.l2_norm
