import itertools

import pytest
import torch
from torch import nn

from recscale.train.optim import (
    OptimConfig,
    OptimizerSwitch,
    SwitchConfig,
    build_optimizer,
    lr_factor,
    parameter_groups,
)


def test_cosine_schedule_warms_up_then_decays_to_floor():
    cfg = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, 110, cfg) for s in range(111)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(factors[10:]))
    assert factors[110] == pytest.approx(0.1)


def test_constant_schedule_after_warmup():
    cfg = OptimConfig(warmup_steps=4)
    assert [lr_factor(s, 100, cfg) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_norms_and_biases_are_not_decayed():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    groups = parameter_groups(model, weight_decay=0.1, decay_norms_and_biases=False)
    assert [len(g["params"]) for g in groups] == [1, 3]
    assert groups[1]["weight_decay"] == 0.0


def test_switch_fires_after_patience_stalled_evaluations():
    switch = OptimizerSwitch(SwitchConfig(patience=2))
    fired = [switch.should_switch(e, m) for e, m in enumerate([0.1, 0.2, 0.2, 0.19, 0.3])]
    assert fired == [False, False, False, True, False]


def test_switch_at_epoch_and_swaps_to_sgd():
    model = nn.Linear(2, 2)
    switch = OptimizerSwitch(SwitchConfig(at_epoch=3, patience=None, sgd_lr=0.05))
    assert [switch.should_switch(e, None) for e in range(3)] == [False, False, True]
    opt = switch.switch(model, OptimConfig())
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.05
    assert switch.should_switch(5, 0.0) is False


def test_build_optimizer_uses_configured_betas():
    opt = build_optimizer(nn.Linear(2, 2), OptimConfig(betas=(0.9, 0.95)))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.95)
