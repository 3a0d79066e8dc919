"""The KL term of a variational latent: KL(posterior || prior), weighted by beta, with an optional warm-up."""

from __future__ import annotations

from torch import Tensor

from .base import Batch, Term


class KL(Term):
    """Mean KL per sample divided by the number of pixels, so that with beta = 1 the objective is the negative
    ELBO per pixel (the reconstruction term is a mean over pixels too).

    With ``warmup_epochs = w`` the weight rises linearly, ``beta * (epoch + 1) / w``, over the first w epochs
    (Bowman et al. 2016's KL annealing), which keeps the posterior from collapsing onto the prior early on.
    """

    name = "kl"

    def __init__(self, beta: float = 1.0, warmup_epochs: int = 0):
        super().__init__(beta)
        self.warmup_epochs = warmup_epochs

    @classmethod
    def from_config(cls, cfg, geometry, x_train=None) -> KL | None:
        return cls(cfg.beta, cfg.kl_warmup) if geometry.variational else None  # a point mass has no KL to weigh

    def weight_at(self, epoch: int) -> float:
        if self.warmup_epochs <= 0:
            return self.weight
        return self.weight * min(1.0, (epoch + 1) / self.warmup_epochs)

    def forward(self, batch: Batch, out) -> Tensor:
        return out.posterior.kl().float().mean() / batch.x.shape[1]

    def extra_repr(self) -> str:
        return f"beta={self.weight}, warmup_epochs={self.warmup_epochs}"
