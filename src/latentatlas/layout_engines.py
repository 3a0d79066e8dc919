"""The layout engines: what optimises a free layout's map (``layout_engine``), by name.

``latentatlas`` is :func:`latentatlas.layout.layout`, latentatlas's own optimiser on any space; ``opentsne`` is
openTSNE's optimiser on the same graph, on the plane and, sent onto it by the sphere, on S2; ``auto``
chooses between them by the space and the number of points (:func:`engine_for`). Each engine returns the map and
the ``scale`` that :func:`latentatlas.layout.refine` places new points with.
"""

from __future__ import annotations

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

    if geometry.flat_layout_dim != geometry.dim or geometry.dim > 2:
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


def _latentatlas(neighbours, geometry, **settings) -> tuple[np.ndarray, float]:
    return layout(neighbours, geometry, **settings), 1.0


def _opentsne(neighbours, geometry, *, init=None, **settings) -> tuple[np.ndarray, float]:
    """openTSNE's flat map, sent into the geometry's space by the geometry (``Geometry.from_flat_layout``: the
    plane as it is; S2 by the inverse Lambert equal-area projection)."""
    from .geometries import get_geometry

    flat = get_geometry("euclidean", geometry.flat_layout_dim)
    coords = opentsne_layout(neighbours, flat, init=None if init is None else init[:, :flat.dim], **settings)
    return geometry.from_flat_layout(coords)


def _flat_map_of_at_most_2(geometry) -> bool:
    return geometry.flat_layout_dim in (1, 2)  # openTSNE lays out 1 or 2 dimensions


@dataclass(frozen=True)
class Engine:
    """A way of laying a map out: ``lay_out(neighbours, geometry, *, steps, seed, init, progress)`` -> (coords
    (N, dim), points of the space; ``refine``'s ``scale`` for them: the map's kernel lengths per the geometry's)."""

    lay_out: Callable[..., tuple[np.ndarray, float]]
    default_steps: Callable[[int], int]  # its steps for N points when none are given
    takes: Callable[..., bool] | None = None  # whether it lays out a geometry's space; None: every one
    takes_said: str = ""  # what it takes, in words, for the refusal
    needs: str | None = None  # the package it needs beyond latentatlas's own


# The engines (docs/maps-research.md, "The layout engine", for what each reaches); the ``layout_engine`` setting
# takes their names or "auto": openTSNE's above AUTO_OPENTSNE_ABOVE points, where latentatlas's steps push only some
# of the points each (Fashion-MNIST's 60,000, plane: 5-NN 0.816 against 0.795; sphere, openTSNE's map sent onto it:
# 0.822 against 0.784), else latentatlas's (mnist-5k's 4,000, plane: 0.912 against 0.897).
ENGINES: dict[str, Engine] = {
    "latentatlas": Engine(_latentatlas, default_steps),
    "opentsne": Engine(_opentsne, lambda n: OPENTSNE_STEPS, takes=_flat_map_of_at_most_2,
                       takes_said="spaces a flat map of 1 or 2 dimensions is sent into (euclidean in 1 or 2, sphere "
                                  "in 3)", needs="openTSNE"),
}
AUTO = "auto"
AUTO_OPENTSNE_ABOVE = PUSHED_PER_FULL_STEP


def engine_for(name: str, geometry, n: int) -> str:
    """The engine that ``name`` means for ``n`` points in ``geometry``'s space: ``name`` itself, or what "auto"
    decides (see :data:`ENGINES`)."""
    if name != AUTO:
        return name
    return "opentsne" if ENGINES["opentsne"].takes(geometry) and n > AUTO_OPENTSNE_ABOVE else "latentatlas"


def check_engine(name, geometry) -> Engine | None:
    """The engine called ``name``, if it can lay out ``geometry``'s space here (None for "auto", which always can);
    else a one-line LatentAtlasError."""
    import importlib.util

    if name == AUTO:
        return None
    if name not in ENGINES:
        raise unknown_name("layout_engine", name, [AUTO, *ENGINES])
    engine = ENGINES[name]
    if engine.takes is not None and not engine.takes(geometry):
        raise LatentAtlasError(f"layout_engine={name!r} lays out {engine.takes_said} only, not {geometry.name} in "
                               f"{geometry.dim}: choose layout_engine='latentatlas'")
    if engine.needs is not None and importlib.util.find_spec(engine.needs) is None:
        raise LatentAtlasError(f"layout_engine={name!r} needs {engine.needs}: pip install {engine.needs} "
                               "(or choose layout_engine='latentatlas')")
    return engine
