"""Law forms: the registry, the official model functions, plot kinds and help texts."""

from __future__ import annotations

import numpy as np
import pytest

from recscale.errors import RecscaleError
from recscale.scaling.laws import LAWS


def test_registry_lists_every_form_with_its_declaration():
    for name in (
        "power_n",
        "power_d",
        "joint",
        "log_compute",
        "performance_law",
        "performance_law_data",
    ):
        law = LAWS.get(name)
        assert law.formula and law.inputs and law.params
        assert law.starts(
            np.ones((len(law.params) + 1, len(law.inputs))) * 2.0,
            np.linspace(1, 2, len(law.params) + 1),
        )
    with pytest.raises(RecscaleError, match="known: "):
        LAWS.get("nope")


def test_performance_law_official_model_function():
    # y = w1(-1/u1 - w3 ln N) + w2(-1/u2 - w4 ln h) + (-1/u3 - w5 ln D) + b, pf1 = pf2 = 2
    w1, w2, d, b, w3, w4, w5 = 0.3, 0.2, 3.0, 0.1, 0.5, 0.4, 0.7
    n, h = 8.0, 50.0
    u1, u2, u3 = 2 * n**w3, 2 * h**w4, 2 * d**w5
    want = w1 * (-1 / u1 - w3 * np.log(n)) + w2 * (-1 / u2 - w4 * np.log(h))
    want += (-1 / u3 - w5 * np.log(d)) + b
    got = LAWS.get("performance_law")(np.array([[n, h]]), np.array([w1, w2, d, b, w3, w4, w5]))
    assert got[0] == pytest.approx(want, rel=1e-12)


def test_every_law_declares_a_plot_and_the_help_lists_them_all():
    from recscale.scaling.laws import law_help, law_names

    assert law_names() == LAWS.names()
    assert {"performance_law_data", "performance_law_data_identity"} <= set(law_names())
    for name in law_names():
        assert name in law_help()
        assert LAWS.get(name).plot
