"""The torus T^n with a power spherical posterior on each circle and the uniform prior: a variational torus.

Each circle gets its own mean direction and concentration (three encoder outputs per circle); the KL to the
uniform prior is the sum of the circles' KLs to the uniform distribution on S^1, and the log-density the sum of
theirs (on the product of arc-length measures, the base of the torus's uniform prior).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import Posterior
from .power_spherical import PowerSpherical
from .torus import Torus


class ProductPowerSpherical(Posterior):
    """n independent power spherical distributions on S^1: ``mu`` (B, n, 2), ``kappa`` (B, n)."""

    spread_label = r"mean concentration $\kappa$ over circles"

    def __init__(self, mu: Tensor, kappa: Tensor):
        self.shape = mu.shape
        self.parts = PowerSpherical(mu.reshape(-1, 2), kappa.reshape(-1))

    @property
    def mode(self) -> Tensor:
        return self.parts.mode.reshape(self.shape).flatten(-2)

    @property
    def spread(self) -> Tensor:
        return self.parts.kappa.reshape(self.shape[:-1]).mean(-1)

    def rsample(self) -> Tensor:
        return self.parts.rsample().reshape(self.shape).flatten(-2)

    def kl(self) -> Tensor:
        return self.parts.kl().reshape(self.shape[:-1]).sum(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.parts.log_prob(z.reshape(-1, 2)).reshape(self.shape[:-1]).sum(-1)


class VariationalTorus(Torus):
    """T^n (``latent_dim`` = n circles), variational; its prior, charts and 3-D picture are the torus's."""

    name = "vtorus"
    variational = True

    @property
    def encoder_features(self) -> int:
        return 3 * self.latent_dim  # per circle: a direction (2) and kappa (1)

    def forward(self, h: Tensor) -> ProductPowerSpherical:
        h = h.reshape(*h.shape[:-1], self.latent_dim, 3)
        return ProductPowerSpherical(F.normalize(h[..., :2], dim=-1), 1 + F.softplus(h[..., 2]))
