"""Parameter counts and FLOPs: module counts, closed forms and measured FLOPs agree."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from recscale.models import (
    ModelConfig,
    build_model,
    count_parameters,
    count_parameters_from_config,
    count_parameters_meta,
    describe_size,
    flops_per_token,
    preset,
    preset_names,
)
from tests.models.model_cases import NUM_ITEMS, VARIANTS, config, random_batch


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_counts_match_module_and_closed_form(name: str) -> None:
    for cfg in (
        config(name),
        config(name, num_item_features=7, item_feature_slots=2),
        config(name, behaviour_levels=[1, 2, 3], predict_behaviour=True),
        config(name, text_dim=12),
    ):
        model = build_model(cfg, NUM_ITEMS)
        counts = count_parameters(model)
        assert counts.total == sum(p.numel() for p in model.parameters())
        assert counts == count_parameters_from_config(cfg, NUM_ITEMS)


@settings(max_examples=40, deadline=None)
@given(
    backbone=st.sampled_from(["hstu", "sasrec", "esasrec", "gpt", "llama"]),
    heads=st.integers(1, 4),
    head_dim=st.sampled_from([2, 4, 6]),
    layers=st.integers(1, 3),
    max_len=st.integers(1, 20),
    ffn_mult=st.sampled_from([None, 1.0, 2.5]),
    tied=st.booleans(),
    switches=st.fixed_dictionaries(
        {
            "attention": st.sampled_from(["silu", "softmax"]),
            "rab": st.sampled_from(["position_time", "position", "none"]),
            "rope": st.booleans(),
            "u_gate": st.booleans(),
            "residual": st.sampled_from(["hstu", "llama"]),
            "num_time_buckets": st.integers(1, 200),
        }
    ),
    sasrec=st.fixed_dictionaries(
        {"norm": st.sampled_from(["sasrec", "pre", "post"]), "norm_affine": st.booleans()}
    ),
    gpt=st.fixed_dictionaries({"bias": st.booleans(), "norm_affine": st.booleans()}),
    esasrec=st.fixed_dictionaries(
        {
            "ffn": st.sampled_from(["swiglu", "gelu"]),
            "ffn_bias": st.booleans(),
            "final_norm": st.booleans(),
        }
    ),
)
def test_closed_form_on_random_configs(
    backbone, heads, head_dim, layers, max_len, ffn_mult, tied, switches, sasrec, gpt, esasrec
) -> None:
    cfg = ModelConfig(
        backbone=backbone,
        dim=heads * head_dim,
        heads=heads,
        layers=layers,
        max_len=max_len,
        ffn_mult=ffn_mult,
        tied=tied,
        hstu=switches,
        sasrec=sasrec,
        gpt=gpt,
        esasrec=esasrec,
    )
    assert count_parameters_meta(cfg, 11) == count_parameters_from_config(cfg, 11)


@pytest.mark.parametrize(("layers", "dim"), [(1, 8), (2, 64), (3, 40)])
def test_bias_free_gpt_blocks_hold_12_l_d2(layers: int, dim: int) -> None:
    bare = ModelConfig(backbone="gpt", dim=dim, heads=4, layers=layers, gpt={"norm_affine": False})
    assert count_parameters_meta(bare, 5).non_embedding == 12 * layers * dim**2
    gains = bare.model_copy(update={"gpt": bare.gpt.model_copy(update={"norm_affine": True})})
    assert (
        count_parameters_meta(gains, 5).non_embedding
        == 12 * layers * dim**2 + (2 * layers + 1) * dim
    )


def test_lsrm_presets_reproduce_zhang_et_al_counts() -> None:
    expected = {
        "lsrm-98k": 98_304,
        "lsrm-786k": 786_432,
        "lsrm-1.57m": 1_572_864,
        "lsrm-9.44m": 9_437_184,
        "lsrm-75.5m": 75_497_472,
        "lsrm-829m": 829_440_000,
    }
    for name, n in expected.items():
        assert count_parameters_from_config(preset(name), 100).non_embedding == n


@pytest.mark.parametrize("backbone", ["hstu", "sasrec", "gpt", "llama"])
def test_ladders_span_four_orders_of_magnitude(backbone: str) -> None:
    names = [n for n in preset_names() if n.startswith(f"{backbone}-") and n.count("-") == 1]
    sizes = [count_parameters_from_config(preset(n), 3416).non_embedding for n in names]
    assert len(sizes) >= 5 and min(sizes) < 3e4 and max(sizes) > 1e8
    assert max(sizes) / min(sizes) >= 1e4


@pytest.mark.parametrize("name", ["hstu-xxl", "gpt-xxl", "lsrm-829m"])
def test_largest_presets_count_on_meta_device(name: str) -> None:
    cfg = preset(name)
    with torch.device("meta"):
        model = build_model(cfg, 26_744)
    assert all(p.is_meta for p in model.parameters())
    assert count_parameters(model) == count_parameters_from_config(cfg, 26_744)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_flops_match_torch_flop_counter(name: str) -> None:
    """forward FLOPs per token = measured matmul FLOPs of one length-N sequence / N."""
    cfg = config(name)
    model = build_model(cfg, NUM_ITEMS).eval()
    n = 10
    items, ts, lengths = random_batch(1, n, [n])
    # torch's counter has no formula for the CPU SDPA kernel; give it the standard one.
    cpu_sdpa = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: (
            lambda q, k, v, *args, **kwargs: sdpa_flop_count(q, k, v)
        )
    }
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=cpu_sdpa) as counter:
        model.encode(items, ts, lengths)
    flops = flops_per_token(cfg, NUM_ITEMS, n)
    assert counter.get_total_flops() == flops.forward * n
    assert flops.training == 3 * flops.forward
    assert flops.output_forward == 2 * cfg.dim * (NUM_ITEMS + 1)


def test_gpt_flops_closed_form() -> None:
    cfg = ModelConfig(backbone="gpt", dim=64, heads=4, layers=3)
    flops = flops_per_token(cfg, 100, 50)
    assert flops.forward == 2 * 12 * 3 * 64**2 + 2 * 3 * 50 * (64 + 64)


def test_describe_size_for_the_cli() -> None:
    info = describe_size(preset("hstu-ml1m"), 3416, 200)
    assert info["non_embedding_params"] == 25_100
    assert info["layers"] == 2 and info["dim"] == 50 and info["heads"] == 1
    assert info["embedding_params"] == 3417 * 50 + 200 * 50 + 2 * (399 + 129)
    assert info["flops_per_token_training"] == 3 * info["flops_per_token_forward"]
    assert describe_size(preset("hstu-ml1m"), 3416)["seq_len"] == 200
