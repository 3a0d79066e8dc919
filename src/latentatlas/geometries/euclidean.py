"""The flat latent space R^d: the encoder's output, unchanged."""

from __future__ import annotations

from torch import Tensor

from .base import Chart, Geometry, Latent


class Euclidean(Geometry):
    """R^d, the tutorial's plain bottleneck."""

    name = "euclidean"
    min_dim = 1

    def forward(self, h: Tensor) -> Latent:
        return Latent(h, h.new_zeros(h.shape[0]))

    def charts(self) -> tuple[Chart, ...]:
        if self.dim != 2:
            return ()
        identity = lambda t: t  # noqa: E731 - the plane is its own chart
        return (Chart("plane", ("$z_1$", "$z_2$"), identity, identity, extent=None, js_from_map="(u, v) => [u, v]"),)
