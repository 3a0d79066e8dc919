"""The unit sphere S^(d-1) with a power spherical posterior and a uniform prior: the hyperspherical VAE.

The power spherical distribution (De Cao & Aziz 2020, "The Power Spherical distribution") has the density

    p(x; mu, kappa) = C(kappa, d) (1 + mu . x)^kappa,  C = 1 / (2^(a + b) pi^b Gamma(a) / Gamma(a + b)),

with b = (d - 1) / 2 and a = b + kappa, on the sphere's surface measure. Unlike the von Mises-Fisher it samples
without rejection: t = 2 u - 1 with u ~ Beta(a, b) is the cosine to mu, a uniform direction v on S^(d-2) completes
the point y = (t, sqrt(1 - t^2) v), and the Householder reflection taking e1 to mu moves it into place, every step
differentiable in (mu, kappa). Its entropy and its KL to the uniform distribution are in closed form.

The encoder gives d numbers for the mean direction and one for kappa = 1 + softplus(h), as the authors' code does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Posterior
from .sphere import Sphere, log_sphere_area


class PowerSpherical(Posterior):
    """PowerSpherical(mu, kappa) per sample: ``mu`` (B, d) unit vectors, ``kappa`` (B,) > 0."""

    spread_label = r"concentration $\kappa$"

    def __init__(self, mu: Tensor, kappa: Tensor):
        self.mu, self.kappa = mu, kappa
        self.d = mu.shape[-1]
        self.beta = torch.full_like(kappa, 0.5 * (self.d - 1))
        self.alpha = self.beta + kappa

    @property
    def mode(self) -> Tensor:
        return self.mu

    @property
    def spread(self) -> Tensor:
        return self.kappa

    def rsample(self) -> Tensor:
        # In float32 at least: torch samples the Beta through a Dirichlet, which has no bfloat16 kernel (autocast).
        wide = torch.promote_types(self.alpha.dtype, torch.float32)
        u = torch.distributions.Beta(self.alpha.to(wide), self.beta.to(wide)).rsample()  # (B,)
        t = (2 * u - 1).unsqueeze(-1).to(self.mu.dtype)  # (B, 1) the cosine to mu
        v = F.normalize(torch.randn(*self.mu.shape[:-1], self.d - 1, device=self.mu.device, dtype=self.mu.dtype),
                        dim=-1)  # (B, d-1) uniform on S^(d-2); for d = 2 a random sign
        # sqrt has an infinite slope at 0, reached where t rounds to +-1 (large kappa, or d = 2 with its b = 1/2).
        y = torch.cat([t, (1 - t.square()).clamp(min=1e-10).sqrt() * v], dim=-1)  # (B, d) around e1
        e1 = torch.zeros_like(self.mu)
        e1[..., 0] = 1
        w = F.normalize(e1 - self.mu, dim=-1)  # the Householder reflection e1 -> mu; zero (identity) where mu = e1
        return y - 2 * (y * w).sum(-1, keepdim=True) * w

    def log_normalizer(self) -> Tensor:  # (B,) log C(kappa, d)
        a, b = self.alpha, self.beta
        return -((a + b) * math.log(2) + b * math.log(math.pi) + torch.lgamma(a) - torch.lgamma(a + b))

    def log_prob(self, z: Tensor) -> Tensor:
        return self.log_normalizer() + self.kappa * torch.log1p((self.mu * z).sum(-1)).clamp(min=-1e30)

    def entropy(self) -> Tensor:
        a, b = self.alpha, self.beta
        return -(self.log_normalizer() + self.kappa * (math.log(2) + torch.digamma(a) - torch.digamma(a + b)))

    def kl(self) -> Tensor:  # KL(q || uniform on S^(d-1)) = -H(q) + log area
        return -self.entropy() + log_sphere_area(self.d)

    @property
    def mean(self) -> Tensor:  # E[x] = mu E[t] = mu (a - b) / (a + b)
        return self.mu * ((self.alpha - self.beta) / (self.alpha + self.beta)).unsqueeze(-1)


class PowerSphericalSphere(Sphere):
    """S^(d-1) in R^d (``latent_dim`` = d, as the sphere's) with a power spherical posterior; variational."""

    name = "power-spherical"
    min_dim = 2
    test_dims = (2, 3, 5)
    variational = True

    @property
    def encoder_features(self) -> int:
        return self.dim + 1  # the direction, and kappa

    def forward(self, h: Tensor) -> PowerSpherical:
        mu = F.normalize(h[..., :-1], dim=-1)
        kappa = 1 + F.softplus(h[..., -1])
        return PowerSpherical(mu, kappa)  # the uniform prior, its samples and density come from the sphere
