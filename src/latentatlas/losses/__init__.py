"""The training objective and its explicit registry of terms.

Adding a term is one new file with a :class:`Term` subclass (its ``from_config`` says when a run's settings ask for
it) and one entry in ``TERMS``; its settings are lines in ``latentatlas.config.RunConfig``.
"""

from __future__ import annotations

from .base import Batch, Objective, Term
from .kl import KL
from .map import MapTerm
from .neighbours import NeighbourEmbedding
from .reconstruction import KINDS, Reconstruction, bce, metric_name, mse

TERMS: tuple[type[Term], ...] = (
    Reconstruction,
    KL,
    NeighbourEmbedding,
    MapTerm,
)


def build_objective(cfg, geometry, x_train=None) -> Objective:
    """The objective a resolved run config asks for, for a model with this ``geometry`` trained on ``x_train``;
    with ``train_noise`` or ``train_occlude``, a denoising one (corrupted inputs, clean targets)."""
    from ..data.corruptions import training_corruption

    corrupt = training_corruption(cfg.train_noise, cfg.train_occlude, None if x_train is None else x_train.shape[1])
    return Objective([t for cls in TERMS if (t := cls.from_config(cfg, geometry, x_train)) is not None], corrupt)


__all__ = ["KINDS", "TERMS", "Batch", "KL", "MapTerm", "NeighbourEmbedding", "Objective", "Reconstruction", "Term", "bce", "build_objective",
           "metric_name", "mse"]
