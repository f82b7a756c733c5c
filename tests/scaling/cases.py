"""Known laws and small results tables shared by the scaling tests."""

from __future__ import annotations

import numpy as np
import polars as pl

from recscale.scaling.laws import LAWS

LSRM = np.array([4.9, 6.8e5, 0.121])  # Zhang et al. ML-20M: E, N0, a (REFERENCES §1.3)
PL_GRID = np.array([(n, h) for n in (4, 8, 12, 16, 24, 32) for h in (25, 50, 75, 100)], float)
# an inverted U over layers (peak at N = 2^(1/0.25) = 16) and over dim (peak near 60)
PL_TRUTH = np.array([0.6, 0.4, 2.0, 0.9, -0.25, -0.17, 0.5])  # w1, w2, D, b, w3, w4, w5


def power_n_table(metric_noise: float = 0.0) -> pl.DataFrame:
    law = LAWS.get("power_n")
    n = np.geomspace(1e5, 1e9, 6)
    loss = law(n[:, None], LSRM) + np.random.default_rng(8).normal(0, metric_noise, n.size)
    return pl.DataFrame(
        {
            "run": [f"hstu-{i}" for i in range(6)],
            "non_embedding_params": n,
            "loss": loss,
            "tokens": np.full(6, 1e8),
        }
    )
