"""Metrics of the ranking task (pure functions of labels and scores).

AUC is the Mann-Whitney statistic: the probability that a random positive scores above a
random negative, ties counting one half. GAUC averages each user's AUC weighted by the
user's number of examples, over the users that have both a positive and a negative (the
usual definition in CTR work). Logloss is the binary cross-entropy of probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels = np.asarray(labels) > 0.5
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: ties count one half
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Per-user AUC weighted by the user's examples, over users with both classes."""
    users, labels, scores = np.asarray(users), np.asarray(labels), np.asarray(scores)
    order = np.argsort(users, kind="stable")
    users, labels, scores = users[order], labels[order], scores[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    total = weight = 0.0
    for lo, hi in zip(starts, np.r_[starts[1:], len(users)], strict=True):
        value = auc(labels[lo:hi], scores[lo:hi])
        if not np.isnan(value):
            total += value * (hi - lo)
            weight += hi - lo
    return total / weight if weight else float("nan")


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy; probabilities clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
