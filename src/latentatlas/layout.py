"""A laid-out map: free coordinates for every training point, optimised by a t-SNE-like objective.

The objective is t-SNE's with uniform affinities on the symmetrised k-nearest-neighbour graph and the geometry's
heavy-tailed kernel q (``Geometry.log_similarity_between``; on the plane t-SNE's Cauchy kernel):

    L = exaggeration * mean over edges (i, j) of -log q_ij  +  log mean over pairs (k, l) of q_kl

the KL divergence of t-SNE up to a constant, since log Z = log N (N - 1) + log mean q. The normaliser's mean is
estimated each step from every point of the step (all of them up to ``POINTS_PER_STEP``) against ``NEGATIVES``
points drawn uniformly, so that every point is pushed by many others at each step (Damrich et al. 2023: the more
negatives, the closer to t-SNE's separation; ``losses.neighbours`` has only a batch's 127). Early exaggeration
(t-SNE's 12 for its first 250 of 750 iterations) is kept as t-SNE's default, though on mnist-5k it changed 5-NN by
less than two seeds differ.

New points are placed as openTSNE's ``transform`` does (:func:`refine`): each starts at the median position of its
nearest training points and is optimised alone against the frozen map, with the per-point form of the same
objective. The training map's mean similarity is held fixed, so a new point feels the repulsion a training point
felt at the end of the layout:

    L_m = exaggeration * mean over m's neighbours j of -log q_mj  +  mean over training points r of q_mr / mean q

Coordinates are free parameters passed through the geometry's own projection (``geometry(h).mode``: unchanged on
the plane, normalised on the sphere) after every step, so nothing here asks which geometry it is. Step sizes are in
units of the kernel's length, 1 / sqrt(kernel_scale).

Measured (benchmarks/layout_probe.py on mnist-5k) is recorded in docs/maps-research.md, "A free layout".
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .errors import LatentAtlasError
from .losses.neighbours import symmetrised
from .progress import progress as progress_bar

# Defaults, in one place. Steps as openTSNE's 250 exaggerated + 500 plain iterations where a step moves every point;
# on more points than PUSHED_PER_FULL_STEP, proportionally more, smaller steps (docs/maps-research.md, "Fashion-MNIST's
# layout": on 60,000 images 3,000 steps of 4,096 points beat 750 of 8,192 in trust and training 5-NN at 0.7x the
# work). On mnist-5k 1,500 steps, 1,024 negatives or exaggeration 1 or 4 moved test 5-NN by under 0.01.
STEPS = 750
PUSHED_PER_FULL_STEP = 16384  # points per step times steps / STEPS: each point is pushed about as often at any N
EXAGGERATION = 12.0  # t-SNE's early exaggeration
EXAGGERATION_FRACTION = 1 / 3  # of the steps (t-SNE: 250 of 750)
POINTS_PER_STEP = 4096  # points a step pushes apart: every point when N is smaller
EDGES_PER_STEP = 65536  # edges a step pulls together: every edge when the graph has fewer (mnist-5k k=10: ~60k)
NEGATIVES = 128  # uniformly drawn points that push each point, each step
LEARNING_RATE = 2.0  # Adam's, in kernel lengths; decays (cosine) to 1 % after the exaggeration (mnist-5k: 1 gave 0.885 on the plane)
INIT_SPREAD = 1e-2  # the initial map's standard deviation, in kernel lengths (t-SNE starts small)
REFINE_STEPS = 100
REFINE_LEARNING_RATE = 0.1  # smaller than the layout's: a new point only settles near its start
RECONSTRUCTION_BATCH = 256  # images a joint layout's step decodes (``reconstruction_weight`` > 0)
RECONSTRUCTION_LEARNING_RATE = 1e-3  # the joint decoder's Adam (the tutorial's)


def default_steps(n: int) -> int:
    """The layout's steps for ``n`` points: ``STEPS``, or more where a step pushes only some of them."""
    return max(STEPS, math.ceil(STEPS * n / PUSHED_PER_FULL_STEP))


def layout(neighbours, geometry, *, steps: int | None = None, seed: int = 0, init=None,
           exaggeration: float = EXAGGERATION, exaggeration_steps: int | None = None,
           points_per_step: int = POINTS_PER_STEP, negatives: int = NEGATIVES,
           learning_rate: float = LEARNING_RATE, decoder: torch.nn.Module | None = None, images=None,
           reconstruction_weight: float = 0.0, progress: bool | None = False) -> np.ndarray:
    """Lay out the points of a neighbour graph in a geometry's space.

    Parameters
    ----------
    neighbours : int array of shape (N, k)
        Each point's k nearest other points (``latentatlas.graph.knn_graph``); symmetrised here.
    geometry : Geometry
        The space of the map; its ``log_similarity_between`` is the kernel and ``geometry(h).mode`` projects.
    steps : int, optional
        Adam steps in all, exaggerated ones included; None: :func:`default_steps` of N.
    seed : int
        Draws the initial map (when ``init`` is None) and every step's samples: the same seed gives the same map.
    init : array of shape (N, dim), optional
        A starting map (say the first principal components), centred, scaled to ``INIT_SPREAD`` kernel lengths and
        set beside the unit point of the last axis before the projection (on the sphere a small cap); None draws
        a Gaussian one from the seed.
    exaggeration : float
        The factor on the attraction during the first ``exaggeration_steps`` (default a third of ``steps``).
    points_per_step, negatives : int
        How many points a step moves (all when N is smaller) and how many uniformly drawn points push each.
    learning_rate : float
        Adam's step in kernel lengths.
    decoder, images, reconstruction_weight : nn.Module, (N, D) tensor in [0, 1], float
        A joint layout: with a weight above 0, each step also decodes ``RECONSTRUCTION_BATCH`` of the points
        (``decoder`` takes their coordinates, standardised by the map's mean and spread where the space is
        scalable, and gives logits) and adds the weight times the binary cross-entropy against their ``images``;
        its gradient moves the coordinates and trains ``decoder`` (Adam, ``RECONSTRUCTION_LEARNING_RATE``)
        together. 0 (the default): a pure layout; ``decoder`` and ``images`` are not used.
    progress : bool, optional
        None: a bar on a terminal and a line every few seconds elsewhere; True: a bar; False: silent.

    Returns
    -------
    ndarray of shape (N, geometry.dim), float32
        The coordinates, points of the geometry's space.

    Examples
    --------
    >>> from latentatlas.geometries import get_geometry
    >>> from latentatlas.graph import knn_graph
    >>> coords = layout(knn_graph(x, 10), get_geometry("sphere", 3), seed=0)  # doctest: +SKIP
    """
    nbrs = _check_neighbours(neighbours, None, "neighbours")
    n, dim = len(nbrs), geometry.dim
    if n < 2:
        raise LatentAtlasError(f"a layout needs at least 2 points, got {n}")
    steps = default_steps(n) if steps is None else steps
    _check_counts(steps=steps, points_per_step=points_per_step, negatives=negatives)
    if exaggeration_steps is None:
        exaggeration_steps = int(steps * EXAGGERATION_FRACTION)
    length = 1.0 / math.sqrt(geometry.kernel_scale)
    gen = torch.Generator().manual_seed(seed)
    if init is None:
        start = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    else:
        start = torch.as_tensor(_check_coords(init, n, dim, "init"), dtype=torch.float64)
    start = start - start.mean(0)
    start = start * (INIT_SPREAD * length / start.std().clamp(min=1e-12))
    # A small copy of the start beside the unit point on the last axis: on the sphere a small cap, not directions
    # scattered over it (which tangle); on the plane a harmless shift.
    start[:, -1] += 1.0
    with torch.no_grad():
        h = geometry(start.float()).mode.clone().requires_grad_(True)  # (N, dim)
    rowptr, cols = symmetrised(nbrs)
    rows = torch.repeat_interleave(torch.arange(n), rowptr.diff())  # (E,) with cols: every edge, both ways
    opt = torch.optim.Adam([h], lr=learning_rate * length)
    joint = _Joint(decoder, images, reconstruction_weight, n) if reconstruction_weight != 0 else None
    plain = max(steps - exaggeration_steps, 1)
    bar = progress_bar(steps, "layout", unit="steps", show=progress)
    with _deterministic():  # the gathers' backward sums in a fixed order: the same seed, the same map
        for step in range(steps):
            if step >= exaggeration_steps:  # cosine to 1 % over the plain steps: large moves first, then settling
                t = (step - exaggeration_steps) / plain
                opt.param_groups[0]["lr"] = learning_rate * length * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))
            # Uniform over the edges, as t-SNE's symmetric affinities weigh them; all of them when they are few.
            edges = torch.randint(len(cols), (EDGES_PER_STEP,), generator=gen) if len(cols) > EDGES_PER_STEP else None
            pushed = torch.randperm(n, generator=gen)[:points_per_step] if n > points_per_step else torch.arange(n)
            others = torch.randint(n, (negatives,), generator=gen)  # (R,)
            alpha = exaggeration if step < exaggeration_steps else 1.0
            loss = objective(h, (rows, cols) if edges is None else (rows[edges], cols[edges]), pushed, others,
                             geometry, alpha)
            if joint is not None:
                loss = loss + joint(h, torch.randint(n, (RECONSTRUCTION_BATCH,), generator=gen), geometry)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if joint is not None:
                joint.step()
            with torch.no_grad():
                h.copy_(geometry(h).mode)  # back onto the space (the sphere's normalisation; the plane's identity)
            bar.update()
    bar.close()
    return h.detach().float().numpy()


class _Joint:
    """A joint layout's reconstruction term: ``term(h, batch, geometry)`` -> weight x the BCE of the decoded batch;
    ``step()`` then moves the decoder by the gradient the step's backward left (its own Adam)."""

    def __init__(self, decoder, images, weight: float, n: int):
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
            raise LatentAtlasError(f"reconstruction_weight={weight!r} must be a number >= 0")
        if decoder is None or images is None:
            raise LatentAtlasError("a joint layout (reconstruction_weight > 0) needs a decoder and the images")
        self.x = torch.as_tensor(images).reshape(len(images), -1).float()
        if len(self.x) != n:
            raise LatentAtlasError(f"images must have one row per point of the graph ({n}), got {len(self.x)}")
        self.decoder, self.weight = decoder, float(weight)
        self.opt = torch.optim.Adam(decoder.parameters(), lr=RECONSTRUCTION_LEARNING_RATE)

    def __call__(self, h: Tensor, batch: Tensor, geometry) -> Tensor:
        z = h[batch]
        if geometry.scalable:  # the decoder sees the map at unit spread, as the run's decoder does
            z = (z - h.mean(0).detach()) / h.std().detach().clamp(min=1e-12)
        return self.weight * F.binary_cross_entropy_with_logits(self.decoder(z), self.x[batch])

    def step(self) -> None:
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def objective(z: Tensor, edges: tuple[Tensor, Tensor], pushed: Tensor, others: Tensor, geometry,
              exaggeration: float = 1.0) -> Tensor:
    """The layout's loss for one step: exaggerated attraction along the edges ((E,) heads, (E,) tails) plus the
    log of the kernel's mean between the ``pushed`` points and the uniformly drawn ``others`` (never a point and
    itself)."""
    attraction = -geometry.log_similarity_pairs(z[edges[0]], z[edges[1]]).mean()
    lq = geometry.log_similarity_between(z[pushed], z[others])  # (P, R)
    lq = lq.masked_fill(pushed[:, None] == others[None, :], -math.inf)
    count = (pushed[:, None] != others[None, :]).sum().clamp(min=1)
    return exaggeration * attraction + torch.logsumexp(lq.reshape(-1), 0) - torch.log(count.to(lq.dtype))


def refine(new_neighbours, train_coords, geometry, *, steps: int = REFINE_STEPS, seed: int = 0,
           exaggeration: float = 1.0, negatives: int = 1024, learning_rate: float = REFINE_LEARNING_RATE,
           init=None, scale: float = 1.0) -> np.ndarray:
    """Place new points on a frozen map, as openTSNE's ``transform`` does.

    Each new point starts at the coordinate-wise median of its neighbours' positions, projected onto the space
    (robust to a stray neighbour; on the sphere the median of unit vectors, normalised), then alone minimises its
    share of the layout's objective against the fixed training coordinates.

    Parameters
    ----------
    new_neighbours : int array of shape (M, k)
        Each new point's k nearest training points (rows of ``train_coords``).
    train_coords : array of shape (N, geometry.dim)
        The frozen map from :func:`layout`.
    geometry : Geometry
        The map's space.
    steps : int
        Adam steps; 0 returns the starting positions.
    seed : int
        Draws the training points that push the new ones each step (all of them when N <= ``negatives``).
    exaggeration : float
        The factor on the attraction to the neighbours.
    negatives : int
        How many training points push each new point per step.
    learning_rate : float
        Adam's step in kernel lengths.
    init : array of shape (M, dim), optional
        Starting positions instead of the medians.
    scale : float
        The map's kernel lengths per kernel length of the geometry: the kernel's scale is multiplied by
        ``scale ** 2``, so a map stored rescaled (a map of the plane at unit spread, ``scale`` its spread in the
        layout's units) or laid out at another density (openTSNE's map sent onto the sphere) is refined with the
        kernel it was laid out with.

    Returns
    -------
    ndarray of shape (M, geometry.dim), float32
    """
    if not (isinstance(scale, (int, float, np.floating)) and math.isfinite(scale) and scale > 0):
        raise LatentAtlasError(f"scale={scale!r} must be a positive number")
    train = torch.as_tensor(_check_coords(train_coords, None, geometry.dim, "train_coords"), dtype=torch.float32)
    geometry = geometry.with_kernel_scale(geometry.kernel_scale * float(scale) ** 2)
    n = len(train)
    nbrs = torch.from_numpy(_check_neighbours(new_neighbours, n, "new_neighbours"))
    _check_counts(negatives=negatives)
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
        raise LatentAtlasError(f"steps={steps!r} must be an integer >= 0")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if init is None:
            start = train[nbrs].median(dim=1).values  # (M, dim)
        else:
            start = torch.as_tensor(_check_coords(init, len(nbrs), geometry.dim, "init"), dtype=torch.float32)
        z = geometry(start).mode.clone().requires_grad_(True)
        mean_q = _mean_similarity(train, geometry, gen)
    opt = torch.optim.Adam([z], lr=learning_rate / math.sqrt(geometry.kernel_scale))
    for _ in range(steps):
        others = train if n <= negatives else train[torch.randint(n, (negatives,), generator=gen)]
        attraction = -geometry.log_similarity_pairs(z[:, None, :], train[nbrs]).mean(1)  # (M,)
        repulsion = geometry.log_similarity_between(z, others).exp().mean(1) / mean_q  # (M,)
        loss = (exaggeration * attraction + repulsion).sum()  # a sum: each point's gradient is its own
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            z.copy_(geometry(z).mode)
    return z.detach().numpy()


@contextlib.contextmanager
def _deterministic():
    """torch's deterministic kernels inside the block, the caller's setting restored after: with several threads the
    default backward of a gather (``z[edges]``) adds each row's gradients in whatever order the threads finish, so
    two layouts of the same seed would differ in the last bits and then grow apart."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _mean_similarity(coords: Tensor, geometry, gen: torch.Generator, pairs: int = 2048) -> Tensor:
    """The map's mean q between two distinct points: exact up to ``pairs`` points, else over a sample of them."""
    sample = coords if len(coords) <= pairs else coords[torch.randperm(len(coords), generator=gen)[:pairs]]
    lq = geometry.log_similarity_between(sample, sample)  # (S, S)
    off = ~torch.eye(len(sample), dtype=torch.bool)
    return lq[off].exp().mean()


def _check_neighbours(neighbours, n: int | None, what: str) -> np.ndarray:
    """(rows, k) integer indices in range (into ``n`` points, or into the rows themselves when n is None)."""
    a = np.asarray(neighbours)
    if a.ndim != 2 or a.shape[1] < 1 or len(a) < 1 or not np.issubdtype(a.dtype, np.integer):
        raise LatentAtlasError(f"{what} must be a non-empty (rows, k) integer array of indices, got "
                               f"{a.dtype} of shape {a.shape}")
    n = len(a) if n is None else n
    if a.min() < 0 or a.max() >= n:
        raise LatentAtlasError(f"{what} holds indices outside 0..{n - 1} (from {a.min()} to {a.max()})")
    return a.astype(np.int64)


def _check_coords(coords, n: int | None, dim: int, what: str) -> np.ndarray:
    a = np.asarray(coords, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != dim or (n is not None and len(a) != n) or len(a) < 1:
        want = f"({'N' if n is None else n}, {dim})"
        raise LatentAtlasError(f"{what} must have shape {want} for this geometry, got {a.shape}")
    if not np.isfinite(a).all():
        raise LatentAtlasError(f"{what} holds NaN or infinite values; give finite coordinates")
    return a


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise LatentAtlasError(f"{name}={value!r} must be a positive integer")
