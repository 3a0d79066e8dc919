"""Latent geometries and their explicit registry: the only place that knows which latent spaces exist.

Adding a geometry is one new file with a :class:`Geometry` subclass and one entry in ``GEOMETRIES``; the shared test
battery (tests/test_geometries.py) then covers it.
"""

from __future__ import annotations

from ..errors import unknown_name
from .base import Chart, Embedding3D, Geometry, PointMass, Posterior
from .euclidean import Euclidean
from .sphere import Sphere

GEOMETRIES: dict[str, type[Geometry]] = {
    Euclidean.name: Euclidean,
    Sphere.name: Sphere,
}


def get_geometry(name: str, latent_dim: int) -> Geometry:
    """Build the geometry registered under ``name`` with the setting ``latent_dim``."""
    try:
        cls = GEOMETRIES[name]
    except (KeyError, TypeError):
        raise unknown_name("geometry", name, GEOMETRIES) from None
    return cls(latent_dim)


__all__ = ["GEOMETRIES", "Chart", "Embedding3D", "Geometry", "PointMass", "Posterior", "get_geometry"]
