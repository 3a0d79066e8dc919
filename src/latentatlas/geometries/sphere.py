"""The unit sphere S^(d-1): the bottleneck L2-normalised, as the tutorial's ``NormalizeLayer``.

Chart convention for S2 (``dim=3``), the physics convention:

    z = (sin(theta) cos(phi), sin(theta) sin(phi), cos(theta))

theta in [0, pi] is the polar angle from the north pole (0, 0, 1); phi in (-pi, pi] is the azimuth measured from
the +x axis towards +y. Maps put phi on the horizontal axis and theta on the vertical one, north pole on top.
The tutorial's map has these two labels swapped.

A second chart is equal-area: the Hammer projection of longitude phi and latitude pi/2 - theta onto the ellipse
x^2 / 8 + y^2 / 2 <= 1, north up. A regular grid on it samples the sphere uniformly (the equirectangular grid
crowds the poles).

Nearest neighbours on the sphere use the angle between points. The chord length |a - b| = 2 sin(angle / 2) is
monotone in the angle, so Euclidean neighbours of unit vectors are exactly the angular neighbours.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Chart, Embedding3D, Geometry, PointMass


def to_angles(z: Tensor) -> Tensor:
    """(N, 3) unit vectors -> (N, 2) columns (phi, theta)."""
    theta = torch.arccos(z[:, 2].clamp(-1.0, 1.0))
    phi = torch.atan2(z[:, 1], z[:, 0])
    phi = torch.where(phi <= -math.pi, phi + 2 * math.pi, phi)  # atan2 may return -pi; the chart's range is (-pi, pi]
    return torch.stack([phi, theta], dim=1)


def from_angles(angles: Tensor) -> Tensor:
    """(N, 2) columns (phi, theta) -> (N, 3) unit vectors."""
    phi, theta = angles[:, 0], angles[:, 1]
    return torch.stack([theta.sin() * phi.cos(), theta.sin() * phi.sin(), theta.cos()], dim=1)


_SQRT2 = math.sqrt(2.0)


def log_sphere_area(d: int) -> float:
    """log of the surface area of S^(d-1) in R^d: 2 pi^(d/2) / Gamma(d/2)."""
    return math.log(2.0) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)


def to_hammer(z: Tensor) -> Tensor:
    """(N, 3) unit vectors -> (N, 2) Hammer coordinates (x, y), x in [-2 sqrt 2, 2 sqrt 2], y in [-sqrt 2, sqrt 2]."""
    phi, theta = to_angles(z).T
    lat = math.pi / 2 - theta
    d = torch.sqrt(1 + lat.cos() * (phi / 2).cos())
    return torch.stack([2 * _SQRT2 * lat.cos() * (phi / 2).sin() / d, _SQRT2 * lat.sin() / d], dim=1)


def from_hammer(xy: Tensor) -> Tensor:
    """(N, 2) Hammer coordinates inside the ellipse -> (N, 3) unit vectors."""
    x, y = xy[:, 0], xy[:, 1]
    w = torch.sqrt((1 - (x / 4) ** 2 - (y / 2) ** 2).clamp(min=0.0))
    phi = 2 * torch.atan2(w * x, 2 * (2 * w**2 - 1))
    lat = torch.arcsin((w * y).clamp(-1.0, 1.0))
    return from_angles(torch.stack([phi, math.pi / 2 - lat], dim=1))


# The Hammer map's edge, the meridian phi = +-pi: the ellipse x^2 / 8 + y^2 / 2 = 1, as a closed polygon.
_HAMMER_OUTLINE = tuple((2 * _SQRT2 * math.cos(t), _SQRT2 * math.sin(t))
                        for t in (2 * math.pi * k / 180 for k in range(181)))


def in_hammer(xy: Tensor) -> Tensor:
    return xy[:, 0] ** 2 / 8 + xy[:, 1] ** 2 / 2 <= 1


# The two inverses above in JavaScript, for the explorer page (tests/test_explorer.py checks them against these).
_JS_FROM_ANGLES = "(phi, theta) => [Math.sin(theta) * Math.cos(phi), Math.sin(theta) * Math.sin(phi), Math.cos(theta)]"
_JS_FROM_HAMMER = """(x, y) => {
  if (x * x / 8 + y * y / 2 > 1) return null;
  const w = Math.sqrt(Math.max(0, 1 - (x / 4) ** 2 - (y / 2) ** 2));
  const phi = 2 * Math.atan2(w * x, 2 * (2 * w * w - 1));
  const theta = Math.PI / 2 - Math.asin(Math.min(1, Math.max(-1, w * y)));
  return [Math.sin(theta) * Math.cos(phi), Math.sin(theta) * Math.sin(phi), Math.cos(theta)];
}"""


FARTHEST_POLAR_ANGLE = 135.0  # degrees: where a flat map's farthest point lands on S2 (Sphere.from_flat_layout;
# Fashion-MNIST: 5-NN 0.822 against 0.819 with the farthest points at the south pole, where the rim's opposite sides
# would meet)


class Sphere(Geometry):
    """The unit sphere in R^dim; ``dim=3`` is the tutorial's S2. Deterministic; its prior is the uniform one."""

    name = "sphere"
    min_dim = 2  # S^0 (two points) is not a useful latent space
    # q = 1 / (1 + 100 chord^2) = 1 / (1 + 200 (1 - cos angle)): half at about 6 degrees. The sphere's size is
    # fixed, so the kernel brings the scale the plane learns (docs/maps-research.md): on mnist-5k, deep-s2 with the
    # term, 60 epochs, 5-NN was 0.796, 0.822 (mean of 3 seeds) and 0.817 for scales 10, 100 and 1000; with 1 it
    # was 0.713 at 30 epochs.
    kernel_scale = 100.0

    def forward(self, h: Tensor) -> PointMass:
        return PointMass(F.normalize(h, p=2.0, dim=-1))

    @property
    def flat_layout_dim(self) -> int | None:
        return 2 if self.dim == 3 else None  # S2 takes a map of the plane

    def from_flat_layout(self, flat: np.ndarray) -> tuple[np.ndarray, float]:
        """A map of the plane sent onto S2 by the inverse Lambert azimuthal equal-area projection: its median point
        to the north pole, its farthest point to ``FARTHEST_POLAR_ANGLE``, areas kept (a cluster's share of the map
        stays its share of the cap). Near the centre a distance d of the plane becomes a chord of 2 d / R (R = the
        farthest point's distance from the median / sin(FARTHEST_POLAR_ANGLE / 2)), so the plane's kernel
        1 / (1 + d^2) there is this sphere's kernel at scale R^2 / 4. Returns (unit vectors (N, 3), ``refine``'s
        ``scale`` for them: R / (2 sqrt(kernel_scale)))."""
        if self.flat_layout_dim is None:
            return super().from_flat_layout(flat)
        z = np.asarray(flat, np.float64)
        z = z - np.median(z, axis=0)
        r = np.linalg.norm(z, axis=1)
        reach = max(float(r.max()), 1e-12) / math.sin(math.radians(FARTHEST_POLAR_ANGLE) / 2)
        theta = 2 * np.arcsin(r / reach)  # the equal-area radius 2 sin(theta / 2) = 2 r / reach
        direction = z / np.maximum(r, 1e-300)[:, None]
        sphere = np.column_stack([np.sin(theta)[:, None] * direction, np.cos(theta)])
        return sphere.astype(np.float32), reach / (2 * math.sqrt(self.kernel_scale))

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Uniform on the sphere: normalised standard normal vectors."""
        return F.normalize(torch.randn(n, self.dim, generator=generator), dim=-1)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """The uniform density on the surface measure: minus the log of the sphere's area."""
        return z.new_full(z.shape[:-1], -log_sphere_area(self.dim))

    def contains(self, z: Tensor, atol: float = 1e-5) -> Tensor:
        return super().contains(z) & ((z.norm(dim=-1) - 1).abs() <= atol)

    def angles(self, z: Tensor) -> Tensor | None:
        """The circle S^1 (``dim=2``) gives each point its angle; larger spheres have no one angle."""
        return torch.atan2(z[:, 1], z[:, 0]).unsqueeze(1) if self.dim == 2 else None

    def traversal(self, n: int) -> tuple[Tensor, list[str]]:
        """Geodesics: the great circle from e_i towards e_(i+1) for each axis i (one circle for S^1), n points each."""
        t = torch.linspace(0, 2 * math.pi, n + 1)[:-1]
        axes = range(1 if self.dim == 2 else self.dim)
        paths = torch.zeros(len(axes), n, self.dim)
        for i in axes:
            paths[i, :, i], paths[i, :, (i + 1) % self.dim] = t.cos(), t.sin()
        return paths, [f"great circle $e_{{{i + 1}}} \\to e_{{{(i + 1) % self.dim + 1}}}$" for i in axes]

    def charts(self) -> tuple[Chart, ...]:
        if self.dim != 3:
            return ()
        labels = (r"azimuth $\phi$ (rad)", r"polar angle $\theta$ (rad)")
        return (
            Chart("equirectangular", labels, to_angles, from_angles, extent=((-math.pi, math.pi), (0.0, math.pi)),
                  y_down=True, js_from_map=_JS_FROM_ANGLES, seams=(True, False)),
            Chart("equal-area", (r"Hammer $x$ (azimuth $\phi$ across)", r"Hammer $y$ (north up)"), to_hammer,
                  from_hammer, extent=((-2 * _SQRT2, 2 * _SQRT2), (-_SQRT2, _SQRT2)), inside=in_hammer,
                  js_from_map=_JS_FROM_HAMMER, seams=(True, False), outline=_HAMMER_OUTLINE),
        )

    def embedding_3d(self) -> Embedding3D | None:
        if self.dim != 3:
            return None
        return Embedding3D("globe", lambda z: z, surface=_surface, wireframe=_graticule(),
                           marks=(("N", (0.0, 0.0, 1.0)),), js_pick=_JS_PICK, radius=1.0)


# A ray from the viewer meets the unit sphere first at the smaller root of |o + t d|^2 = 1; that point is latent.
_JS_PICK = """(o, d) => {
  const dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
  const od = o[0] * d[0] + o[1] * d[1] + o[2] * d[2];
  const oo = o[0] * o[0] + o[1] * o[1] + o[2] * o[2];
  const disc = od * od - dd * (oo - 1);
  if (disc < 0) return null;
  const t = (-od - Math.sqrt(disc)) / dd;
  const p = [o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]];
  const n = Math.hypot(p[0], p[1], p[2]);
  return p.map((v) => v / n);
}"""


def _surface():
    """The unit sphere as plotly surface grids: 25 polar angles by 49 azimuths."""
    theta, phi = np.meshgrid(np.linspace(0, np.pi, 25), np.linspace(-np.pi, np.pi, 49))
    return np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)


def _graticule() -> tuple[tuple[tuple[float, float, float], ...], ...]:
    """Parallels every 30 degrees of latitude and meridians every 30 degrees of longitude, as closed polylines."""
    steps = [2 * math.pi * k / 72 for k in range(73)]
    lines = []
    for lat in (-60, -30, 0, 30, 60):
        t = math.radians(lat)
        lines.append(tuple((math.cos(t) * math.cos(a), math.cos(t) * math.sin(a), math.sin(t)) for a in steps))
    for lon in range(0, 180, 30):
        p = math.radians(lon)
        lines.append(tuple((math.cos(a) * math.cos(p), math.cos(a) * math.sin(p), math.sin(a)) for a in steps))
    return tuple(lines)
