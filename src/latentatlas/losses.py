"""Reconstruction losses, written once, and the training objective built from them.

Losses are means over every pixel, as the tutorial's ``nn.BCELoss()``/``nn.MSELoss()``, so numbers compare with its
figures. The decoder produces logits; BCE uses the logits form, which is exact and stable where sigmoid saturates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bce(logits: Tensor, x: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, x)


def mse(logits: Tensor, x: Tensor) -> Tensor:
    return F.mse_loss(torch.sigmoid(logits), x)


LOSSES = {"bce": bce, "mse": mse}


def objective(recon_loss: str, logits: Tensor, x: Tensor, kl: Tensor) -> Tensor:
    """Per-pixel reconstruction loss plus the KL term per pixel (the ELBO scaled by 1 / n_features)."""
    return LOSSES[recon_loss](logits.float(), x) + kl.float().mean() / x.shape[1]
