"""Evaluation protocols as data, and the seeded negatives of the sampled ones.

A result is meaningless without its protocol, so a protocol is a small frozen value with
a canonical name that is recorded next to every number:

- ``full``: rank the target against every item, the user's history excluded (HSTU,
  Zhai et al. 2024 §4.1.1; Dallmann et al. 2021);
- ``full-no-exclude``: every item is a candidate, history included;
- ``full-window``: only the items of the model's input window (the last ``max_len``)
  are excluded, as the HSTU code does (``invalid_ids=seq_features.past_ids``); it differs
  from ``full`` only for users whose history is longer than the window;
- ``sampled-N``: the target against N uniformly drawn items outside the user's history
  (``sampled-100``: SASRec, Kang & McAuley 2018; ``sampled-2499``: the Performance Law
  code of Shen et al. 2024).

Otherwise history means the whole ``EvalSet`` history of the user. The target itself is
never excluded, even when the user consumed it before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from recscale.errors import RecscaleError
from recscale.registry import Registry


@dataclass(frozen=True)
class Protocol:
    """How candidates are chosen for ranking.

    Attributes:
        kind: ``"full"`` (all items) or ``"sampled"`` (target + ``num_negatives``).
        exclude_history: drop the user's history items from the candidates
            (always true for ``sampled``: negatives are drawn outside the history).
        num_negatives: negatives per user for ``sampled``; None for ``full``.
        seed: seeds the negatives; user ``u``'s draw depends only on ``(seed, u)``,
            so results do not depend on batch size, ranks or order.
        name: canonical label (``full``, ``full-no-exclude``, ``sampled-100``).
        window_only: exclude only the items of the input window (``full-window``).
        drop_seen_targets: leave out users whose target already occurs in their history
            (``full-filter-seen``: the eSASRec / RecTools benchmark's ``filter_already_seen``).
        drop_cold_targets: also leave out users whose target occurs in no user's history, an
            item the model never trained on (``full-filter-seen-cold``: the same benchmark's
            ``filter_cold_items``; with leave-one-out the histories are its training data).
    """

    kind: Literal["full", "sampled"]
    exclude_history: bool
    num_negatives: int | None
    seed: int
    name: str
    window_only: bool = False
    drop_seen_targets: bool = False
    drop_cold_targets: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProtocolFamily:
    """A protocol name pattern (``sampled-(\\d+)``) and the protocol each match builds."""

    pattern: str
    build: Callable[[re.Match[str], int], Protocol | None]
    description: str


PROTOCOLS: Registry[ProtocolFamily] = Registry("evaluation protocol")


def register_protocol(name: str, pattern: str, description: str):
    """Decorator: ``build(match, seed) -> Protocol | None`` serves names matching ``pattern``
    (None refuses the match, e.g. ``sampled-0``)."""

    def add(build: Callable[[re.Match[str], int], Protocol | None]):
        PROTOCOLS.register(name)(ProtocolFamily(pattern, build, description))
        return build

    return add


@register_protocol("full", "full", "every item, the user's history excluded (HSTU)")
def _full(match: re.Match[str], seed: int) -> Protocol:
    return Protocol("full", True, None, seed, "full")


@register_protocol("full-no-exclude", "full-no-exclude", "every item, history included")
def _full_no_exclude(match: re.Match[str], seed: int) -> Protocol:
    return Protocol("full", False, None, seed, "full-no-exclude")


@register_protocol(
    "full-window", "full-window", "every item, only the input window's items excluded"
)
def _full_window(match: re.Match[str], seed: int) -> Protocol:
    return Protocol("full", True, None, seed, "full-window", window_only=True)


@register_protocol(
    "full-filter-seen",
    "full-filter-seen",
    "every item, history excluded, users whose target is in their history dropped (eSASRec)",
)
def _full_filter_seen(match: re.Match[str], seed: int) -> Protocol:
    return Protocol("full", True, None, seed, "full-filter-seen", drop_seen_targets=True)


@register_protocol(
    "full-filter-seen-cold",
    "full-filter-seen-cold",
    "full-filter-seen, and users whose target is in nobody's history dropped too (the eSASRec"
    " benchmark's holdout filters in full)",
)
def _full_filter_seen_cold(match: re.Match[str], seed: int) -> Protocol:
    return Protocol(
        "full",
        True,
        None,
        seed,
        "full-filter-seen-cold",
        drop_seen_targets=True,
        drop_cold_targets=True,
    )


@register_protocol(
    "sampled-N",
    r"sampled-(\d+)",
    "the target against N >= 1 uniform non-history items (sampled-100, sampled-2499)",
)
def _sampled(match: re.Match[str], seed: int) -> Protocol | None:
    n = int(match.group(1))
    return Protocol("sampled", True, n, seed, f"sampled-{n}") if n >= 1 else None


def protocol_names() -> str:
    """The protocol families, for help texts and errors."""
    return ", ".join(PROTOCOLS.names())


def parse_protocol(text: str | Protocol, seed: int = 0) -> Protocol:
    """A protocol name (see :data:`PROTOCOLS`) -> :class:`Protocol`."""
    if isinstance(text, Protocol):
        return text
    name = text.strip().lower()
    for family_name in PROTOCOLS:
        family = PROTOCOLS.get(family_name)
        match = re.fullmatch(family.pattern, name)
        if match and (protocol := family.build(match, seed)) is not None:
            return protocol
    raise RecscaleError(f"unknown evaluation protocol {text!r}; allowed: {protocol_names()}")


def sample_negatives(
    history: np.ndarray, target: int, num_items: int, n: int, seed: int, user: int
) -> np.ndarray:
    """``int64 [n]`` items drawn uniformly, with replacement, from ``1..num_items`` minus
    ``history`` and ``target``.

    Drawn with replacement as in the SASRec code (each negative an independent draw), so
    ``sampled-2499`` stays defined for users who have seen most of a small catalogue. The
    draw is an index into the eligible items, mapped to an item id in one vectorised
    step: exact and without rejection loops.
    """
    excluded = np.unique(np.append(np.asarray(history, dtype=np.int64), np.int64(target)))
    excluded = excluded[(excluded >= 1) & (excluded <= num_items)]
    eligible = num_items - len(excluded)
    if eligible <= 0:
        raise RecscaleError(
            f"user {user} has interacted with every one of the {num_items} items; "
            "a sampled protocol has no negatives to draw (use protocol 'full')"
        )
    rng = np.random.default_rng([seed, user])
    k = rng.integers(0, eligible, size=n, dtype=np.int64)
    # Eligible items below excluded[j] number excluded[j] - 1 - j; the k-th eligible item
    # is k + 1 shifted by the excluded items at or below it.
    below = excluded - 1 - np.arange(len(excluded), dtype=np.int64)
    return k + 1 + np.searchsorted(below, k, side="right")


def sampled_candidates(
    histories: list[np.ndarray],
    targets: np.ndarray,
    users: np.ndarray,
    num_items: int,
    protocol: Protocol,
) -> np.ndarray:
    """``int64 [B, 1 + N]`` candidates per user: the target in column 0, then N negatives."""
    if protocol.kind != "sampled" or protocol.num_negatives is None:
        raise ValueError(f"protocol {protocol.name} does not sample candidates")
    n = protocol.num_negatives
    out = np.empty((len(targets), 1 + n), dtype=np.int64)
    out[:, 0] = targets
    for i, (history, target, user) in enumerate(zip(histories, targets, users, strict=True)):
        out[i, 1:] = sample_negatives(history, int(target), num_items, n, protocol.seed, int(user))
    return out
