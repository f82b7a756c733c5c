"""gBCE, the generalised binary cross-entropy of gSASRec (Petrov & Macdonald, RecSys'23,
arXiv 2308.07192), as a pure function of logits.

BCE on ``k`` sampled negatives sees only a fraction ``alpha = k / (|I| - 1)`` of the
negatives, and the model learns to overestimate the positive's probability (overconfidence).
gBCE raises the positive's predicted probability to a power ``beta``::

    L = -log sigmoid(s+)^beta - sum_j log(1 - sigmoid(s_j))
    beta = alpha * (t * (1 - 1/alpha) + 1/alpha)   (= 1 - t * (1 - alpha))

with the calibration ``t`` in [0, 1]: ``t = 0`` gives plain BCE (``beta = 1``), ``t = 1``
gives ``beta = alpha``, where the paper shows the overconfidence is gone; gSASRec uses
``t = 0.75``. ``-log sigmoid(s)^beta`` is computed as ``beta * softplus(-s)`` (as the
gSASRec-pytorch code does), finite for any logit; RecTools reaches the same value by turning
``s+`` into a logit whose sigmoid is ``sigmoid(s+)^beta`` (a test holds the two equal). Both
codes average over the ``k + 1`` terms of a position; here the terms are summed, as in the
paper, and so are the positions, as every ``LOSSES`` entry returns them (``train/losses.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """The exponent on the positive's probability for ``num_negatives`` of ``num_items``."""
    if num_items < 2:
        raise ValueError(f"gBCE needs at least 2 items, got {num_items}")
    if not 1 <= num_negatives <= num_items - 1:
        raise ValueError(
            f"gBCE needs 1 <= num_negatives <= num_items - 1 = {num_items - 1} (sampling rate"
            f" alpha at most 1), got {num_negatives}"
        )
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"gBCE calibration t must lie in [0, 1], got {t}")
    alpha = num_negatives / (num_items - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce_loss(
    pos_logits: torch.Tensor,
    neg_logits: torch.Tensor,
    num_items: int,
    t: float,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Summed gBCE of ``P`` positions.

    Args:
        pos_logits: [P] score of each position's positive item.
        neg_logits: [P, k] scores of its ``k`` sampled negatives.
        num_items: catalogue size ``|I|`` the negatives are drawn from.
        t: calibration in [0, 1].
        valid: [P, k] bool, False for a negative to leave out (e.g. one equal to the
            positive); ``alpha`` still counts all ``k``, the rate the sampler was run at.

    Returns:
        A scalar, the loss summed over positions and their terms.
    """
    if pos_logits.ndim != 1 or neg_logits.ndim != 2 or neg_logits.shape[0] != len(pos_logits):
        raise ValueError(
            f"pos_logits must be [P] and neg_logits [P, k], got {tuple(pos_logits.shape)}"
            f" and {tuple(neg_logits.shape)}"
        )
    beta = gbce_beta(neg_logits.shape[1], num_items, t)
    positive = beta * F.softplus(-pos_logits)  # -log sigmoid(s+)^beta
    negative = F.softplus(neg_logits)  # -log(1 - sigmoid(s_j))
    if valid is not None:
        negative = negative.masked_fill(~valid, 0.0)
    return positive.sum() + negative.sum()
