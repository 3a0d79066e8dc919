"""The training objective as an object: a weighted sum of named terms, each a small module.

The trainer hands every term a :class:`Batch` (the inputs, their indices in the training set, the epoch) and the
model's output (latent point, posterior, reconstruction logits); the objective returns the weighted total and each
term's unweighted value, which the trainer logs per epoch in ``history.json``.

Some terms are defined only on the training set (a neighbour-embedding term needs each sample's neighbours in it):
they say so with ``on_unseen = False``, and the test loss leaves them out. A test batch has no indices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from torch import Tensor, nn


@dataclass
class Batch:
    """What a term may look at besides the model's output."""

    x: Tensor  # (B, n_features) floats in [0, 1]: the encoder's input and the reconstruction's target
    index: Tensor | None = None  # (B,) positions in the training set; None for data outside it (the test set)
    epoch: int = 0  # 0-based, for terms whose weight follows a schedule
    model: nn.Module | None = None  # the model being trained, for a term that runs a part of it on other inputs


class Term(nn.Module):
    """One named part of the objective; subclasses set ``name`` and implement :meth:`forward`.

    ``from_config`` builds the term a run's settings ask for, or None when they leave it out, so the objective is
    assembled from the registry without a list of cases.
    """

    name: ClassVar[str]
    on_unseen: ClassVar[bool] = True  # defined on samples outside the training set (then in the test loss)

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    @classmethod
    def from_config(cls, cfg, geometry, x_train=None) -> Term | None:
        """The term a resolved run config asks for, or None; ``x_train`` is the training set where one is known."""
        raise NotImplementedError

    def weight_at(self, epoch: int) -> float:
        """The term's weight in ``epoch`` (0-based); constant unless a subclass schedules it."""
        return self.weight

    def forward(self, batch: Batch, out) -> Tensor:  # -> () the batch's mean, unweighted
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"weight={self.weight}"


class Objective(nn.Module):
    """``sum(term.weight_at(epoch) * term(batch, out))`` over the terms defined for the batch.

    ``corrupt`` (a denoising objective) changes the model's input on training batches only: the terms still score
    the reconstruction against the clean batch, and the test loss is that of clean inputs.
    """

    def __init__(self, terms: list[Term], corrupt=None):
        super().__init__()
        self.corrupt = corrupt
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"each term of an objective needs its own name: {names}")
        self.terms = nn.ModuleList(terms)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    def forward(self, batch: Batch, out) -> tuple[Tensor, dict[str, Tensor]]:
        """(the weighted total, {term name: its detached value}); training-only terms skip a batch without indices."""
        total, parts = None, {}
        for term in self.terms:
            if batch.index is None and not term.on_unseen:
                continue
            value = term(batch, out)
            parts[term.name] = value.detach()
            weighted = value * term.weight_at(batch.epoch)
            total = weighted if total is None else total + weighted
        return total, parts

    def batch_sampler(self, batch_size: int):
        """The batches a term needs drawn (a neighbour term: samples with their neighbours), or None: shuffled."""
        samplers = [s for t in self.terms if (s := getattr(t, "batch_sampler", None)) is not None]
        return samplers[0](batch_size) if samplers else None

    def loss_fn(self):
        """The trainer's ``loss_fn(model, batch)``: run the model on the batch's inputs and score its output."""

        def loss_fn(model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
            x = batch.x if self.corrupt is None or batch.index is None else self.corrupt(batch.x)
            return self(replace(batch, model=model), model(x))

        return loss_fn
