"""The contract every latent geometry keeps: a module between encoder and decoder.

A geometry takes the encoder's output ``h`` and returns a :class:`Latent`: the point ``z`` in the latent space and
the KL divergence of its posterior to the prior. Deterministic geometries are the zero-KL case, so variational
geometries fit the same contract (as diffusers' ``IdentityDistribution`` and ``DiagonalGaussianDistribution`` do).
A geometry also owns its 2-D charts, so plots never need to know which geometry they draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import LatentAtlasError


class Latent(NamedTuple):
    z: Tensor  # (B, dim) a point of the latent space
    kl: Tensor  # (B,) KL(posterior || prior) in nats; zeros for a deterministic geometry


@dataclass(frozen=True)
class Chart:
    """A 2-D map of the latent space and its inverse, used for encoder maps and decoder grids.

    ``extent`` is ``((xmin, xmax), (ymin, ymax))`` when the chart covers a fixed domain (the whole sphere), or
    ``None`` when the domain is unbounded and plots take it from the data (the plane). ``inside`` tells which map
    points belong to the chart where its domain is not the whole extent (an ellipse); ``y_down`` puts ymin on top
    (a polar angle measured from the north pole). ``js_from_map`` is the same inverse as JavaScript source, an
    arrow function ``(u, v) => [z1, ..., zd]`` returning ``null`` outside the domain, so the explorer page can
    decode any point of the map without knowing the geometry.
    """

    name: str
    labels: tuple[str, str]  # axis labels of (map x, map y)
    to_map: Callable[[Tensor], Tensor]  # (N, dim) -> (N, 2)
    from_map: Callable[[Tensor], Tensor]  # (N, 2) -> (N, dim)
    extent: tuple[tuple[float, float], tuple[float, float]] | None = None
    inside: Callable[[Tensor], Tensor] | None = None  # (N, 2) -> (N,) bool; None: the whole extent
    y_down: bool = False
    js_from_map: str | None = None


class Geometry(nn.Module):
    """Base class of latent geometries; subclasses set ``name`` and ``min_dim`` and implement ``forward``."""

    name: ClassVar[str]
    min_dim: ClassVar[int] = 1

    def __init__(self, dim: int):
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < self.min_dim:
            raise LatentAtlasError(
                f"latent_dim={dim!r} is not possible for the {self.name} geometry: it needs an integer >= {self.min_dim}"
            )
        self.dim = dim

    @property
    def encoder_features(self) -> int:
        """How many features the encoder must output for this geometry (2 * dim for a Gaussian posterior)."""
        return self.dim

    def forward(self, h: Tensor) -> Latent:  # h: (B, encoder_features)
        raise NotImplementedError

    def contains(self, z: Tensor, atol: float = 1e-5) -> Tensor:
        """(B,) bool: whether each row of ``z`` is a point of this space."""
        return torch.isfinite(z).all(dim=-1)

    def charts(self) -> tuple[Chart, ...]:
        """The 2-D maps of this space that plots can draw; empty when there is none."""
        return ()

    @property
    def is_globe(self) -> bool:
        """Whether the space is the unit sphere in R^3, so a point on a drawn globe's surface is a latent point."""
        return False

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
