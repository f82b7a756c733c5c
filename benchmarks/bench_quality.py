"""ApEn on ML-1M: vectorised apen_batch vs the plain O(K²) Python reference.

Run:  RECSCALE_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/bench_quality.py [--users 200]

Times the vectorised ApEn on all users (last K = 50 items, m = 2, r = 0.2), times the
reference loop on a random subsample of users, checks they agree on that subsample,
and prints the per-user speed-up and the extrapolated reference time for all users.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recscale.data import load_dataset
from recscale.data.quality import apen, apen_per_user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m-sasrec")
    parser.add_argument("--users", type=int, default=200, help="users for the reference loop")
    parser.add_argument("--m", type=int, default=2)
    parser.add_argument("--r", type=float, default=0.2)
    parser.add_argument("--last-k", type=int, default=50)
    args = parser.parse_args()

    ds = load_dataset(args.dataset)
    t0 = time.perf_counter()
    fast = apen_per_user(ds, args.m, args.r, args.last_k)
    t_fast = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    sample = rng.choice(ds.num_users, size=min(args.users, ds.num_users), replace=False)
    t0 = time.perf_counter()
    ref = [apen(ds.sequence(int(u))[-args.last_k :], args.m, args.r) for u in sample]
    t_ref = time.perf_counter() - t0
    np.testing.assert_allclose(fast[sample], ref, rtol=1e-9, atol=1e-12)

    per_user_fast = t_fast / ds.num_users
    per_user_ref = t_ref / len(sample)
    print(f"dataset {args.dataset}: {ds.num_users} users, K={args.last_k}, m={args.m}, r={args.r}")
    print(f"mean ApEn {fast.mean():.6f}")
    print(f"vectorised, all users: {t_fast:.3f} s")
    print(f"reference loop, {len(sample)} users: {t_ref:.3f} s")
    print(f"reference extrapolated to all users: {per_user_ref * ds.num_users:.1f} s")
    print(f"speed-up per user: {per_user_ref / per_user_fast:.0f}x")


if __name__ == "__main__":
    main()
