"""R^d with a diagonal Gaussian posterior and a standard normal prior: the VAE (Kingma & Welling 2014)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Posterior
from .euclidean import Euclidean

_LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian(Posterior):
    """N(mu, diag(exp(logvar))) per sample."""

    spread_label = r"mean posterior $\sigma$ over dimensions"

    def __init__(self, mu: Tensor, logvar: Tensor):
        # Bounded so that exp() neither overflows nor underflows to a zero sigma (whose log-density is infinite).
        self.mu, self.logvar = mu, logvar.clamp(-30.0, 20.0)

    @property
    def mode(self) -> Tensor:
        return self.mu

    @property
    def spread(self) -> Tensor:  # (B,) the mean sigma over dimensions, for maps of the posterior's spread
        return (0.5 * self.logvar).exp().mean(-1)

    def rsample(self) -> Tensor:
        return self.mu + torch.randn_like(self.mu) * (0.5 * self.logvar).exp()

    def kl(self) -> Tensor:  # KL(N(mu, sigma^2) || N(0, 1)) in closed form, summed over dimensions
        return 0.5 * (self.mu.square() + self.logvar.exp() - 1.0 - self.logvar).sum(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * ((z - self.mu).square() * (-self.logvar).exp() + self.logvar + _LOG_2PI).sum(-1)


class Gaussian(Euclidean):
    """R^d as the plane is (its chart and 3-D view), but the encoder gives a mean and a log-variance per dimension;
    the decoder sees a sample (its mean in eval mode)."""

    name = "gaussian"
    scalable = True
    variational = True

    @property
    def encoder_features(self) -> int:
        return 2 * self.dim  # mean and log-variance

    def forward(self, h: Tensor) -> DiagonalGaussian:
        mu, logvar = h.chunk(2, dim=-1)
        return DiagonalGaussian(mu, logvar)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.dim, generator=generator)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (z.square() + _LOG_2PI).sum(-1)

    def traversal(self, n: int) -> tuple[Tensor, list[str]]:
        """(dim, n, dim) points along each axis through the prior's mean, from -3 to 3 prior s.d."""
        t = torch.linspace(-3.0, 3.0, n)
        paths = torch.zeros(self.dim, n, self.dim)
        for i in range(self.dim):
            paths[i, :, i] = t
        return paths, [f"$z_{{{i + 1}}}$ from -3 to 3" for i in range(self.dim)]
