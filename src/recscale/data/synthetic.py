"""Synthetic sequences with a known entropy rate: a mixture of sparse Markov chains.

Each of ``num_chains`` chains gives every item ``out_degree`` random successors with
probabilities drawn from a symmetric Dirichlet(``concentration``), and with
probability ``teleport`` jumps to a uniformly random item instead (which makes each
chain ergodic, so its stationary distribution is unique). A user picks one chain
(uniformly), starts from that chain's stationary distribution and walks.

The knob: small ``concentration`` puts most mass on one successor (low entropy);
large ``concentration`` spreads it evenly (entropy near ln(out_degree)).

Because every walk starts in stationarity, every step's conditional entropy given the
chain and the previous item is exactly the chain's entropy rate
h_c = Σ_i π_c(i) H(P_c(i, ·)); the mixture's rate is the mean over chains (the chain
identity costs nothing per step asymptotically). ``info["entropy_rate"]`` is in nats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recscale.data.dataset import SequenceDataset


def _row_entropy(probs: np.ndarray, teleport: float, n: int) -> np.ndarray:
    """Entropy (nats) of each row of (1 - ε)·sparse + ε·uniform; ``probs: [n, k]``."""
    u = teleport / n
    p = (1 - teleport) * probs + u
    h = -(p * np.log(p)).sum(axis=1)
    # Successors are distinct, so the other n - k items each get ε/n.
    k = probs.shape[1]
    if u > 0:
        h -= (n - k) * u * np.log(u)
    return h


def _stationary(
    succ: np.ndarray, probs: np.ndarray, teleport: float, tol: float = 1e-12
) -> np.ndarray:
    n, k = succ.shape
    rows = np.repeat(np.arange(n), k)
    p = sp.csr_matrix(((1 - teleport) * probs.ravel(), (rows, succ.ravel())), shape=(n, n))
    pt = p.T.tocsr()
    pi = np.full(n, 1.0 / n)
    for _ in range(10_000):
        new = pt @ pi + teleport / n
        new /= new.sum()
        if np.abs(new - pi).sum() < tol:
            return new
        pi = new
    return pi


def markov_mixture(
    num_users: int,
    num_items: int,
    mean_length: float,
    num_chains: int = 4,
    concentration: float = 0.5,
    seed: int = 0,
    out_degree: int = 8,
    teleport: float = 0.01,
    min_length: int = 2,
    mean_gap_s: float = 86_400.0,
) -> tuple[SequenceDataset, dict[str, Any]]:
    """Generate ``num_users`` sequences over items ``1..num_items``.

    Lengths are ``min_length`` + geometric, with mean ``mean_length``; timestamps start
    at a random second of 2020 and advance by exponential gaps of mean ``mean_gap_s``.
    Deterministic per ``seed``; vectorised over users (one numpy step per position).

    Returns ``(dataset, info)``; ``info`` has ``entropy_rate`` (nats per step),
    ``chain_entropy_rates [C]``, ``chain_of_user [U]``, and the chains themselves
    (``successors [C, n, k]`` 0-based, ``probs [C, n, k]``, ``teleport``).
    """
    if num_items < out_degree + 1 or num_users < 1 or num_chains < 1:
        raise ValueError("need num_items > out_degree, num_users >= 1, num_chains >= 1")
    if mean_length < min_length:
        raise ValueError("mean_length must be >= min_length")
    rng = np.random.default_rng(seed)
    n, k = num_items, out_degree

    succ = np.stack([_distinct_rows(n, k, n, rng) for _ in range(num_chains)])  # [C, n, k]
    probs = rng.dirichlet(np.full(k, concentration), size=(num_chains, n))
    pis = np.stack([_stationary(succ[c], probs[c], teleport) for c in range(num_chains)])
    h_rows = np.stack([_row_entropy(probs[c], teleport, n) for c in range(num_chains)])
    chain_h = (pis * h_rows).sum(axis=1)

    extra = rng.geometric(1.0 / (mean_length - min_length + 1), size=num_users) - 1
    lengths = (min_length + extra).astype(np.int64)
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    chain = rng.integers(0, num_chains, size=num_users)
    cum_probs = np.cumsum(probs, axis=2)
    cum_pi = np.cumsum(pis, axis=1)

    items = np.empty(offsets[-1], dtype=np.int64)
    # Users sorted by length (longest first) keep the active set a prefix at every step.
    order = np.argsort(-lengths, kind="stable")
    active_until = np.searchsorted(-lengths[order], -np.arange(1, lengths.max() + 1), side="right")
    # Inverse-CDF draw of each first item from its chain's stationary distribution.
    start_u = rng.random(num_users)
    state = np.empty(num_users, dtype=np.int64)
    chain_sorted = chain[order]
    for c in range(num_chains):
        mine = chain_sorted == c
        state[mine] = np.minimum(np.searchsorted(cum_pi[c], start_u[mine], side="right"), n - 1)
    items[offsets[order]] = state
    for t in range(1, int(lengths.max())):
        a = int(active_until[t])
        users, cur = order[:a], state[:a]
        c = chain[users]
        u = rng.random(a)
        jump = rng.random(a) < teleport
        pick = np.minimum((cum_probs[c, cur] < u[:, None]).sum(axis=1), k - 1)
        nxt = np.where(jump, rng.integers(0, n, size=a), succ[c, cur, pick])
        items[offsets[users] + t] = nxt
        state = nxt

    gaps = rng.exponential(mean_gap_s, size=len(items))
    gaps[offsets[:-1]] = 0.0
    start = rng.integers(1_577_836_800, 1_609_459_200, size=num_users)  # 2020 in Unix s
    times = np.cumsum(gaps)
    times -= np.repeat(times[offsets[:-1]], lengths)
    timestamps = np.repeat(start, lengths) + times.astype(np.int64)

    ds = SequenceDataset(
        name=f"markov-mixture-{seed}",
        offsets=offsets,
        items=items + 1,
        num_items=n,
        user_ids=np.arange(1, num_users + 1).astype(str),
        item_ids=np.concatenate([[""], np.arange(1, n + 1).astype(str)]),
        timestamps=timestamps,
        recipe={
            "generator": "markov_mixture",
            "num_chains": num_chains,
            "concentration": concentration,
            "out_degree": out_degree,
            "teleport": teleport,
            "seed": seed,
        },
    )
    info = {
        "entropy_rate": float(chain_h.mean()),
        "chain_entropy_rates": chain_h,
        "chain_of_user": chain,
        "successors": succ,
        "probs": probs,
        "teleport": teleport,
    }
    return ds, info


def _distinct_rows(rows: int, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``[rows, k]``: k distinct uniform ids in [0, n) per row, vectorised.

    Draw 4k ids per row and keep the first k distinct ones in draw order (rows with too
    few distinct draws are redrawn), which is uniform over k-subsets.
    """
    out = np.empty((rows, k), dtype=np.int64)
    todo = np.arange(rows)
    while len(todo):
        c = rng.integers(0, n, size=(len(todo), 4 * k))
        order = np.argsort(c, axis=1, kind="stable")
        sorted_c = np.take_along_axis(c, order, axis=1)
        first_sorted = np.ones_like(c, dtype=bool)
        first_sorted[:, 1:] = sorted_c[:, 1:] != sorted_c[:, :-1]
        first = np.empty_like(first_sorted)
        np.put_along_axis(first, order, first_sorted, axis=1)
        take = first & (np.cumsum(first, axis=1) <= k)
        ok = take.sum(axis=1) == k
        out[todo[ok]] = c[ok][take[ok]].reshape(-1, k)
        todo = todo[~ok]
    return out
