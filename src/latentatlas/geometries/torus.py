"""The torus T^n: n circles, each a unit 2-vector, so the decoder sees R^(2n) (``latent_dim`` = n).

A latent point is (cos a_1, sin a_1, ..., cos a_n, sin a_n). The ring (n = 1) is the population state of
head-direction cells, the 2-torus that of a grid-cell module. The chart of T^2 is the square of angles
[-pi, pi]^2 whose opposite edges are the same points, so its decoder grid tiles seamlessly; its 3-D picture is the
ring torus of radii R = 2 and r = 1:

    (x, y, z) = ((R + r cos a_2) cos a_1, (R + r cos a_2) sin a_1, r sin a_2).

The ring's chart is the unit circle in its plane.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Chart, Embedding3D, Geometry, PointMass

RING_R, TUBE_R = 2.0, 1.0  # the ring torus's radii in 3-D


def circles(z: Tensor) -> Tensor:
    """(N, 2n) -> (N, n, 2): one unit 2-vector per circle."""
    return z.reshape(*z.shape[:-1], -1, 2)


def torus_angles(z: Tensor) -> Tensor:
    """(N, 2n) points -> (N, n) angles in (-pi, pi]."""
    c = circles(z)
    a = torch.atan2(c[..., 1], c[..., 0])
    return torch.where(a <= -math.pi, a + 2 * math.pi, a)


def from_torus_angles(a: Tensor) -> Tensor:
    """(N, n) angles -> (N, 2n) points."""
    return torch.stack([a.cos(), a.sin()], dim=-1).flatten(-2)


def ring_torus(z: Tensor) -> Tensor:
    """(N, 4) points of T^2 -> (N, 3) on the ring torus."""
    c = circles(z)  # (N, 2, 2)
    w = RING_R + TUBE_R * c[:, 1, 0]
    return torch.stack([w * c[:, 0, 0], w * c[:, 0, 1], TUBE_R * c[:, 1, 1]], dim=1)


def _circle_from_map(uv: Tensor) -> Tensor:
    return F.normalize(uv, dim=-1)


def _in_annulus(uv: Tensor) -> Tensor:
    r = uv.norm(dim=-1)
    return (r >= 0.8) & (r <= 1.2)


_JS_TO_3D = f"(z) => {{ const w = {RING_R} + {TUBE_R} * z[2]; return [w * z[0], w * z[1], {TUBE_R} * z[3]]; }}"
# The first hit of the ray o + t d on the ring torus, by sphere tracing its signed distance
# |(|p_xy| - R, p_z)| - r (a step of that size never crosses the surface); then the point's two angles.
_JS_PICK = f"""(o, d) => {{
  const n = Math.hypot(d[0], d[1], d[2]);
  const u = [d[0] / n, d[1] / n, d[2] / n];
  let t = 0;
  for (let i = 0; i < 200; i++) {{
    const p = [o[0] + t * u[0], o[1] + t * u[1], o[2] + t * u[2]];
    const q = Math.hypot(p[0], p[1]) - {RING_R};
    const s = Math.hypot(q, p[2]) - {TUBE_R};
    if (s < 1e-5) {{
      const a1 = Math.atan2(p[1], p[0]), a2 = Math.atan2(p[2], q);
      return [Math.cos(a1), Math.sin(a1), Math.cos(a2), Math.sin(a2)];
    }}
    t += s;
    if (t > 100) return null;
  }}
  return null;
}}"""


class Torus(Geometry):
    """T^n as n unit circles; deterministic, with the uniform prior (independent uniform angles)."""

    name = "torus"
    min_dim = 1
    test_dims = (1, 2, 3)
    # As the sphere's (a bounded space; chord^2 on each circle is at most 4); not tuned for the torus.
    kernel_scale = 100.0

    @property
    def dim(self) -> int:
        return 2 * self.latent_dim

    def forward(self, h: Tensor) -> PointMass:
        return PointMass(F.normalize(circles(h), dim=-1).flatten(-2))

    def contains(self, z: Tensor, atol: float = 1e-5) -> Tensor:
        return super().contains(z) & ((circles(z).norm(dim=-1) - 1).abs() <= atol).all(-1)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        a = (torch.rand(n, self.latent_dim, generator=generator) * 2 - 1) * math.pi
        return from_torus_angles(a)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        return z.new_full(z.shape[:-1], -self.latent_dim * math.log(2 * math.pi))

    def angles(self, z: Tensor) -> Tensor:
        return torus_angles(z)

    def traversal(self, n: int) -> tuple[Tensor, list[str]]:
        """Geodesics: once round each circle (from -pi), the other angles at 0."""
        t = torch.linspace(-math.pi, math.pi, n + 1)[:-1]
        a = torch.zeros(self.latent_dim, n, self.latent_dim)
        for i in range(self.latent_dim):
            a[i, :, i] = t
        return from_torus_angles(a), [f"angle $a_{{{i + 1}}}$ round its circle" for i in range(self.latent_dim)]

    def charts(self) -> tuple[Chart, ...]:
        if self.latent_dim == 1:
            # The circle in its plane; the map's points near it (an annulus) stand for their direction.
            js = "(u, v) => { const n = Math.hypot(u, v); return n >= 0.8 && n <= 1.2 ? [u / n, v / n] : null; }"
            return (Chart("ring", ("$z_1 = \\cos a$", "$z_2 = \\sin a$"), lambda z: z, _circle_from_map,
                          extent=((-1.25, 1.25), (-1.25, 1.25)), inside=_in_annulus, js_from_map=js),)
        if self.latent_dim == 2:
            js = "(u, v) => [Math.cos(u), Math.sin(u), Math.cos(v), Math.sin(v)]"
            return (Chart("angles", ("angle $a_1$ (rad, periodic)", "angle $a_2$ (rad, periodic)"), torus_angles,
                          from_torus_angles, extent=((-math.pi, math.pi), (-math.pi, math.pi)), js_from_map=js,
                          seams=(True, True)),)
        return ()

    def embedding_3d(self) -> Embedding3D | None:
        if self.latent_dim != 2:
            return None
        return Embedding3D("ring torus", ring_torus, js_to_3d=_JS_TO_3D, axis_labels=("$x$", "$y$", "$z$"),
                           surface=_surface, wireframe=_wireframe(), js_pick=_JS_PICK, radius=RING_R + TUBE_R)


def _surface():
    """The ring torus as plotly surface grids: 49 by 25 angles."""
    a1, a2 = np.meshgrid(np.linspace(-np.pi, np.pi, 49), np.linspace(-np.pi, np.pi, 25))
    w = RING_R + TUBE_R * np.cos(a2)
    return w * np.cos(a1), w * np.sin(a1), TUBE_R * np.sin(a2)


def _wireframe() -> tuple[tuple[tuple[float, float, float], ...], ...]:
    """Circles of constant a_2 (round the ring) and of constant a_1 (round the tube), every 45 degrees."""
    steps = [2 * math.pi * k / 72 for k in range(73)]
    lines = []
    for k in range(8):
        c = 2 * math.pi * k / 8
        lines.append(tuple(((RING_R + TUBE_R * math.cos(c)) * math.cos(s), (RING_R + TUBE_R * math.cos(c)) * math.sin(s),
                            TUBE_R * math.sin(c)) for s in steps))
        lines.append(tuple(((RING_R + TUBE_R * math.cos(s)) * math.cos(c), (RING_R + TUBE_R * math.cos(s)) * math.sin(c),
                            TUBE_R * math.sin(s)) for s in steps))
    return tuple(lines)
