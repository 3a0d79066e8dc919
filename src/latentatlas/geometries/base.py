"""The contract every latent geometry keeps: a module between encoder and decoder.

A geometry takes the encoder's output ``h`` and returns a :class:`Posterior` over its space: ``rsample()`` draws a
point with gradients (training), ``mode`` is its most likely point (evaluation) and ``kl()`` its KL divergence to
the geometry's prior. A deterministic geometry returns a :class:`PointMass`: the sample is the mode and the KL is
zero, so variational geometries fit the same contract (as diffusers' ``IdentityDistribution`` and
``DiagonalGaussianDistribution`` do).

A geometry also says what it offers, so that nothing else needs to know which geometry it is: its 2-D charts
(:class:`Chart`), a 3-D picture of its space (:class:`Embedding3D`), its prior (or None), the decoder's input width
(``dim``) and the encoder's output width (``encoder_features``), which may differ. A variational geometry's posterior
also has a density (``log_prob``) on the same base measure as its prior's (``prior_log_prob``), for the IWAE
estimate of log p(x), and a ``spread`` for maps; ``traversal`` gives the geodesics that traversal figures decode,
and ``angles`` the angles scored against true ones on synthetic neural data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import LatentAtlasError


class Posterior:
    """A distribution over the latent space, one per sample of a batch."""

    spread_label: ClassVar[str] = ""  # what ``spread`` measures, for a colour bar

    @property
    def spread(self) -> Tensor | None:  # (B,) one number for each posterior's width (sigma, kappa), or None
        return None

    @property
    def mode(self) -> Tensor:  # (B, dim)
        raise NotImplementedError

    def rsample(self) -> Tensor:  # (B, dim), differentiable with respect to the encoder's output
        raise NotImplementedError

    def kl(self) -> Tensor:  # (B,) KL(posterior || prior) in nats
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:  # (B, dim) -> (B,) log density of z, in nats
        """The density of a variational posterior at ``z``, with respect to the same base measure as the
        geometry's ``prior_log_prob`` (Lebesgue on R^d, surface measure on a sphere or circle), for the
        importance-weighted likelihood; a point mass has none."""
        raise NotImplementedError(f"{type(self).__name__} has no density")


class PointMass(Posterior):
    """The posterior of a deterministic geometry: all its mass on one point, zero KL."""

    def __init__(self, z: Tensor):
        self.z = z

    @property
    def mode(self) -> Tensor:
        return self.z

    def rsample(self) -> Tensor:
        return self.z

    def kl(self) -> Tensor:
        return self.z.new_zeros(self.z.shape[0])


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
    # Whether the map's left and right (bottom and top) edges are the same points of the space (the sphere's
    # phi = +-pi, the torus's angles): a step between two points more than half the extent apart along that axis
    # crossed the seam, and is drawn to the edge and on from the other one, never across the map.
    seams: tuple[bool, bool] = (False, False)
    outline: tuple[tuple[float, float], ...] | None = None  # the domain's edge where it is not the extent's box

    def boundary(self) -> tuple[tuple[float, float], ...] | None:
        """The domain's edge as a closed polygon in map coordinates: the outline, else the extent's box; None for
        an unbounded chart."""
        if self.outline is not None or self.extent is None:
            return self.outline
        (x0, x1), (y0, y1) = self.extent
        return ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))


@dataclass(frozen=True)
class Embedding3D:
    """A 3-D picture of the latent space, for rotatable scatters (plots, report, explorer).

    ``to_3d`` places latent points in R^3 (``js_to_3d`` is the same map in JavaScript, for the explorer page). A
    space that is a surface there (the sphere is itself; a torus would be a ring torus) also gives the surface:
    ``surface()`` as (X, Y, Z) grids for plotly, ``wireframe`` polylines drawn faintly behind the points, and
    ``js_pick``, a JavaScript arrow function ``(o, d) => [z1, ..., zd] | null`` that returns the latent point where
    the ray ``o + t d`` (t >= 0, world coordinates) first meets the surface, so the explorer decodes what is under
    the mouse. ``radius`` scales the drawing (None: the data's largest norm).
    """

    title: str
    to_3d: Callable[[Tensor], Tensor]  # (N, dim) -> (N, 3)
    js_to_3d: str = "(z) => z"
    axis_labels: tuple[str, str, str] = ("$z_1$", "$z_2$", "$z_3$")  # matplotlib mathtext, as a chart's
    surface: Callable[[], tuple] | None = None  # () -> (X, Y, Z) arrays of one shape
    wireframe: tuple[tuple[tuple[float, float, float], ...], ...] = ()  # polylines on the surface
    marks: tuple[tuple[str, tuple[float, float, float]], ...] = ()  # (text, where) labels on the surface
    js_pick: str | None = None
    radius: float | None = None

    @property
    def is_surface(self) -> bool:
        """Whether a point of the drawn surface is a latent point (so the view can decode under the mouse)."""
        return self.js_pick is not None


class Geometry(nn.Module):
    """Base class of latent geometries.

    Subclasses set ``name`` and ``min_dim`` and implement :meth:`forward`. ``latent_dim`` is the setting a user
    gives (for the sphere, the dimension of the space it sits in); ``dim`` is the width of a latent point as the
    decoder sees it, and ``encoder_features`` the width the encoder must output.
    """

    name: ClassVar[str]
    min_dim: ClassVar[int] = 1
    test_dims: ClassVar[tuple[int, ...]] = (2, 3, 5)  # what the shared test battery tries
    variational: ClassVar[bool] = False  # whether its posterior has a spread (and a KL worth logging)
    # Whether the space is closed under scaling (a vector space): a laid-out map in it may be stored rescaled (at
    # unit spread, for the networks), where a bounded space's map stays as it is.
    scalable: ClassVar[bool] = False

    def __init__(self, latent_dim: int):
        super().__init__()
        if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < self.min_dim:
            raise LatentAtlasError(f"latent_dim={latent_dim!r} is not possible for the {self.name} geometry: "
                                   f"it needs an integer >= {self.min_dim}")
        self.latent_dim = latent_dim

    @property
    def dim(self) -> int:
        """The width of a latent point: the decoder's input."""
        return self.latent_dim

    @property
    def encoder_features(self) -> int:
        """How many features the encoder must output (2 * dim for a diagonal Gaussian posterior)."""
        return self.dim

    def forward(self, h: Tensor) -> Posterior:  # h: (B, encoder_features)
        raise NotImplementedError

    @property
    def flat_layout_dim(self) -> int | None:
        """The dimensions of a flat map (t-SNE's plane) that :meth:`from_flat_layout` sends into this space; None
        where a flat map cannot be sent here (a free layout's map then needs an engine that lays this space out)."""
        return None

    def from_flat_layout(self, flat: np.ndarray) -> tuple[np.ndarray, float]:
        """A map laid out in ``flat_layout_dim`` flat dimensions, sent into this space: (points (N, dim), float32;
        ``layout.refine``'s ``scale`` for them: the flat map's kernel lengths per this space's)."""
        raise LatentAtlasError(f"a flat map cannot be sent into the {self.name} space in {self.dim} dimensions")

    def contains(self, z: Tensor, atol: float = 1e-5) -> Tensor:
        """(B,) bool: whether each row of ``z`` is a point of this space."""
        return torch.isfinite(z).all(dim=-1)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, dim) points drawn from the prior; refused by a geometry that has none (see ``has_prior``)."""
        raise LatentAtlasError(f"the {self.name} geometry has no prior to sample from")

    @property
    def has_prior(self) -> bool:
        return type(self).sample_prior is not Geometry.sample_prior

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """(N, dim) -> (N,) the prior's log density, on the base measure of the posterior's ``log_prob``."""
        raise LatentAtlasError(f"the {self.name} geometry has no prior density")

    def angles(self, z: Tensor) -> Tensor | None:
        """(N, dim) -> (N, dim // 2) angles in radians that this space gives its points, for scoring against true
        angles (synthetic neural data): a flat latent read as the angle of each consecutive coordinate pair about
        the points' mean (a ring or a torus drawn in the plane); None where the width is odd. Circles override it
        with their own angles."""
        if z.shape[1] % 2:
            return None
        c = (z - z.mean(0)).reshape(len(z), -1, 2)
        return torch.atan2(c[..., 1], c[..., 0])

    # The similarity kernel of neighbour embedding: q = 1 / (1 + kernel_scale * d^2), heavy-tailed as t-SNE's
    # Cauchy kernel. A bounded space overrides the scale: on the unit sphere d^2 = 2 (1 - cos angle) is at most 4.
    kernel_scale: ClassVar[float] = 1.0

    def with_kernel_scale(self, kernel_scale: float) -> Geometry:
        """This geometry with its similarity kernel's scale replaced: for a map laid out at another density than
        the space's default (a map of the plane at unit spread, openTSNE's map sent onto the sphere)."""
        other = copy.copy(self)
        other.kernel_scale = float(kernel_scale)
        return other

    def log_similarity(self, z: Tensor) -> Tensor:
        """(B, dim) -> (B, B) log q between every two points, for a neighbour-embedding term; ``d`` is the distance
        between the points as the decoder sees them (on the sphere the chord, a function of the angle)."""
        return self.log_similarity_between(z, z)

    def log_similarity_between(self, a: Tensor, b: Tensor) -> Tensor:
        """(A, dim), (B, dim) -> (A, B) log q between each point of ``a`` and each of ``b``: the same kernel as
        :meth:`log_similarity`, for a layout that scores points against a sample of others (or a frozen map)."""
        d2 = (a.square().sum(-1, keepdim=True) + b.square().sum(-1) - 2 * a @ b.T).clamp(min=0)  # (A, B)
        return -torch.log1p(self.kernel_scale * d2)

    def log_similarity_pairs(self, a: Tensor, b: Tensor) -> Tensor:
        """(B, dim), (B, dim) -> (B,) log q between ``a[i]`` and ``b[i]``, the kernel of :meth:`log_similarity`."""
        return -torch.log1p(self.kernel_scale * (a - b).square().sum(-1))

    def charts(self) -> tuple[Chart, ...]:
        """The 2-D maps of this space that plots can draw; empty when there is none."""
        return ()

    def embedding_3d(self) -> Embedding3D | None:
        """A 3-D picture of this space, or None when it has none."""
        return None

    def traversal(self, n: int) -> tuple[Tensor, list[str]] | None:
        """Paths along each latent direction for traversal figures: ((P, n, dim) points, P labels), geodesics of
        the space through its prior's centre; None where the space has no prior to centre them on."""
        return None

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"
