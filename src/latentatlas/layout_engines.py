"""The layout engines: what optimises a free layout's map (``layout_engine``), by name.

``latentatlas`` is :func:`latentatlas.layout.layout`, latentatlas's own optimiser on any space; ``opentsne`` is
openTSNE's optimiser on the same graph, on the plane and, through :func:`onto_sphere`, on the sphere; ``auto``
chooses between them by the space and the number of points (:func:`engine_for`). Each engine returns the map and
the ``scale`` that :func:`latentatlas.layout.refine` places new points with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .errors import LatentAtlasError, unknown_name
from .layout import (EXAGGERATION, EXAGGERATION_FRACTION, PUSHED_PER_FULL_STEP, _check_coords, _check_counts,
                     _check_neighbours, default_steps, layout)
from .progress import progress as progress_bar

OPENTSNE_STEPS = 750  # openTSNE's 250 exaggerated + 500 plain iterations, at any N (a step moves every point)


def opentsne_layout(neighbours, geometry, *, steps: int | None = None, seed: int = 0, init=None,
                    exaggeration: float = EXAGGERATION, exaggeration_steps: int | None = None,
                    progress: bool | None = False) -> np.ndarray:
    """The same objective on the plane, optimised by openTSNE (its FFT-interpolated gradient, t-SNE's optimiser).

    The affinities are t-SNE's on the same k-nearest-neighbour graph (uniform, symmetrised as t-SNE does: a mutual
    pair weighs twice a one-way pair; :func:`layout` weighs every pair of the union alike); openTSNE's own
    optimiser (momentum 0.5 then 0.8, its gains, learning rate N / exaggeration) moves every point every step with
    the whole repulsion, where :func:`layout` samples it. On
    Fashion-MNIST's 60,000 images that reaches a sharper map (docs/maps-research.md, "The layout engine").
    Parameters as :func:`layout`'s; ``steps`` defaults to ``OPENTSNE_STEPS``; ``init`` is rescaled as openTSNE
    rescales its PCA start (standard deviation 1e-4 on the first axis). Needs openTSNE (``pip install openTSNE``).
    """
    import scipy.sparse as sp

    if geometry.name != "euclidean" or geometry.dim > 2:
        raise LatentAtlasError(f"opentsne_layout lays out the plane (euclidean in 1 or 2 dimensions), not "
                               f"{geometry.name} in {geometry.dim}; the engine sends its map onto the sphere")
    check_engine("opentsne", geometry)
    import openTSNE

    nbrs = _check_neighbours(neighbours, None, "neighbours")
    n, dim = len(nbrs), geometry.dim
    if n < 2:
        raise LatentAtlasError(f"a layout needs at least 2 points, got {n}")
    steps = OPENTSNE_STEPS if steps is None else steps
    _check_counts(steps=steps)
    if exaggeration_steps is None:
        exaggeration_steps = int(steps * EXAGGERATION_FRACTION)
    # t-SNE's symmetrisation of uniform k-NN affinities (openTSNE's ``Uniform``): (P + P^T) / 2N, so a pair that
    # are each other's neighbours weighs twice a one-way pair (Fashion-MNIST: 0.816 against 0.809 by the union)
    rows = np.repeat(np.arange(n), nbrs.shape[1])
    p = sp.csr_matrix((np.ones(nbrs.size), (rows, nbrs.ravel())), shape=(n, n))
    p = ((p + p.T) / (2 * nbrs.size)).tocsr()
    if init is None:
        start = np.random.default_rng(seed).standard_normal((n, dim))
    else:
        start = _check_coords(init, n, dim, "init").copy()
    start = start - start.mean(0)
    start = start / max(float(start[:, 0].std()), 1e-12) * 1e-4
    bar = progress_bar(steps, "layout", unit="steps", show=progress)
    every = 10

    def tick(iteration, error, embedding):
        bar.update(every)
        return False  # carry on

    threads = max(torch.get_num_threads(), 1)
    embedding = openTSNE.TSNEEmbedding(start, openTSNE.affinity.PrecomputedAffinities(p, normalize=False),
                                       n_jobs=threads, random_state=seed, negative_gradient_method="auto",
                                       callbacks=tick, callbacks_every_iters=every)
    phases = [(exaggeration_steps, exaggeration, 0.5), (steps - exaggeration_steps, 1.0, 0.8)]
    for n_iter, alpha, momentum in phases:
        if n_iter > 0:
            embedding = embedding.optimize(n_iter=n_iter, exaggeration=alpha, momentum=momentum)
    bar.close()
    coords = np.asarray(embedding, dtype=np.float64)
    if not np.isfinite(coords).all():
        raise LatentAtlasError("openTSNE's layout diverged (NaN or infinite coordinates); lay out with "
                               "layout_engine='latentatlas'")
    return coords.astype(np.float32)


FARTHEST_POLAR_ANGLE = 135.0  # degrees: where onto_sphere puts a plane map's farthest point (Fashion-MNIST: 5-NN
# 0.822 against 0.819 with the farthest points at the south pole, where the rim's opposite sides would meet)


def onto_sphere(plane: np.ndarray, kernel_scale: float) -> tuple[np.ndarray, float]:
    """A map of the plane sent onto the unit sphere by the inverse Lambert azimuthal equal-area projection: its
    median point to the north pole, its farthest point to ``FARTHEST_POLAR_ANGLE``, areas kept (a cluster's share of
    the map stays its share of the cap). Near the centre a distance d of the plane becomes a chord of 2 d / R
    (R = the farthest point's distance from the median / sin(FARTHEST_POLAR_ANGLE / 2)), so the plane's kernel
    1 / (1 + d^2) there is the sphere's kernel of scale R^2 / 4. Returns (unit vectors (N, 3), ``refine``'s
    ``scale`` for them on a sphere of ``kernel_scale``: R / (2 sqrt(kernel_scale)))."""
    z = np.asarray(plane, np.float64)
    z = z - np.median(z, axis=0)
    r = np.linalg.norm(z, axis=1)
    reach = max(float(r.max()), 1e-12) / math.sin(math.radians(FARTHEST_POLAR_ANGLE) / 2)
    theta = 2 * np.arcsin(r / reach)  # the equal-area radius 2 sin(theta / 2) = 2 r / reach
    direction = z / np.maximum(r, 1e-300)[:, None]
    sphere = np.column_stack([np.sin(theta)[:, None] * direction, np.cos(theta)])
    return sphere.astype(np.float32), reach / (2 * math.sqrt(kernel_scale))


def _latentatlas(neighbours, geometry, **settings) -> tuple[np.ndarray, float]:
    return layout(neighbours, geometry, **settings), 1.0


def _opentsne(neighbours, geometry, *, init=None, **settings) -> tuple[np.ndarray, float]:
    """openTSNE's map of the plane; on the sphere, that map sent onto it (:func:`onto_sphere`)."""
    if geometry.name != "sphere":
        return opentsne_layout(neighbours, geometry, init=init, **settings), 1.0
    from .geometries import get_geometry

    plane = opentsne_layout(neighbours, get_geometry("euclidean", 2), init=None if init is None else init[:, :2],
                            **settings)
    return onto_sphere(plane, geometry.kernel_scale)


@dataclass(frozen=True)
class Engine:
    """A way of laying a map out: ``lay_out(neighbours, geometry, *, steps, seed, init, progress)`` -> (coords
    (N, dim), points of the space; ``refine``'s ``scale`` for them: the map's kernel lengths per the geometry's)."""

    lay_out: Callable[..., tuple[np.ndarray, float]]
    default_steps: Callable[[int], int]  # its steps for N points when none are given
    spaces: tuple[tuple[str, int], ...] | None = None  # the (geometry, dim) it lays out; None: every one
    needs: str | None = None  # the package it needs beyond latentatlas's own


# The engines (docs/maps-research.md, "The layout engine", for what each reaches); the ``layout_engine`` setting
# takes their names or "auto": openTSNE's above AUTO_OPENTSNE_ABOVE points, where latentatlas's steps push only some
# of the points each (Fashion-MNIST's 60,000, plane: 5-NN 0.816 against 0.795; sphere, openTSNE's map sent onto it:
# 0.822 against 0.784), else latentatlas's (mnist-5k's 4,000, plane: 0.912 against 0.897).
ENGINES: dict[str, Engine] = {
    "latentatlas": Engine(_latentatlas, default_steps),
    "opentsne": Engine(_opentsne, lambda n: OPENTSNE_STEPS, spaces=(("euclidean", 1), ("euclidean", 2), ("sphere", 3)),
                       needs="openTSNE"),
}
AUTO = "auto"
AUTO_OPENTSNE_ABOVE = PUSHED_PER_FULL_STEP


def engine_for(name: str, geometry, n: int) -> str:
    """The engine that ``name`` means for ``n`` points in ``geometry``'s space: ``name`` itself, or what "auto"
    decides (see :data:`ENGINES`)."""
    if name != AUTO:
        return name
    takes = ENGINES["opentsne"].spaces
    return "opentsne" if (geometry.name, geometry.dim) in takes and n > AUTO_OPENTSNE_ABOVE else "latentatlas"


def check_engine(name, geometry) -> Engine | None:
    """The engine called ``name``, if it can lay out ``geometry``'s space here (None for "auto", which always can);
    else a one-line LatentAtlasError."""
    import importlib.util

    if name == AUTO:
        return None
    if name not in ENGINES:
        raise unknown_name("layout_engine", name, [AUTO, *ENGINES])
    engine = ENGINES[name]
    if engine.spaces is not None and (geometry.name, geometry.dim) not in engine.spaces:
        spaces = ", ".join(f"{g} in {d}" for g, d in engine.spaces)
        raise LatentAtlasError(f"layout_engine={name!r} lays out {spaces} dimensions only, not {geometry.name} in "
                               f"{geometry.dim}: choose layout_engine='latentatlas'")
    if engine.needs is not None and importlib.util.find_spec(engine.needs) is None:
        raise LatentAtlasError(f"layout_engine={name!r} needs {engine.needs}: pip install {engine.needs} "
                               "(or choose layout_engine='latentatlas')")
    return engine
