"""The flat latent space R^d: the encoder's output, unchanged."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from .base import Chart, Embedding3D, Geometry, PointMass


class Euclidean(Geometry):
    """R^d, the tutorial's plain bottleneck; deterministic, with no prior."""

    name = "euclidean"
    scalable = True
    min_dim = 1
    test_dims = (1, 2, 3, 5)

    def forward(self, h: Tensor) -> PointMass:
        return PointMass(h)

    @property
    def flat_layout_dim(self) -> int:
        return self.dim  # a flat map is a map of this space as it is

    def from_flat_layout(self, flat: np.ndarray) -> tuple[np.ndarray, float]:
        return np.asarray(flat, np.float32), 1.0

    def charts(self) -> tuple[Chart, ...]:
        if self.dim != 2:
            return ()
        identity = lambda t: t  # noqa: E731 - the plane is its own chart
        return (Chart("plane", ("$z_1$", "$z_2$"), identity, identity, extent=None, js_from_map="(u, v) => [u, v]"),)

    def embedding_3d(self) -> Embedding3D | None:
        if self.dim != 3:
            return None
        return Embedding3D("3-D latents", lambda z: z)
