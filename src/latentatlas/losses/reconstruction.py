"""Reconstruction losses, written once: every BCE and MSE in latentatlas (training, metrics, baselines) is these.

Losses are means over every pixel by default, as the tutorial's ``nn.BCELoss()``/``nn.MSELoss()``, so numbers
compare with its figures. The decoder produces logits; BCE uses the logits form, which is exact and stable where
the sigmoid saturates. A baseline that produces probabilities passes ``torch.logit`` of them (clipped away from 0
and 1, which is the only change it needs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Term


def bce(logits: Tensor, x: Tensor, reduction: str = "mean") -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, x, reduction=reduction)


def mse(logits: Tensor, x: Tensor, reduction: str = "mean") -> Tensor:
    return F.mse_loss(torch.sigmoid(logits), x, reduction=reduction)


KINDS = {"bce": bce, "mse": mse}  # the ``loss`` setting's choices


def metric_name(kind: str) -> str:
    """The metrics.json key of a reconstruction loss on the test set (``bce`` -> ``bce_test``)."""
    return f"{kind}_test"


class Reconstruction(Term):
    """Per-pixel BCE (the tutorial's) or MSE between the decoded image and the input."""

    name = "reconstruction"

    def __init__(self, kind: str = "bce", weight: float = 1.0):
        super().__init__(weight)
        self.kind = kind
        self.fn = KINDS[kind]

    @classmethod
    def from_config(cls, cfg, geometry, x_train=None) -> Reconstruction:
        return cls(cfg.loss)

    def forward(self, batch: Batch, out) -> Tensor:
        return self.fn(out.logits.float(), batch.x)

    def extra_repr(self) -> str:
        return f"{self.kind}, weight={self.weight}"
