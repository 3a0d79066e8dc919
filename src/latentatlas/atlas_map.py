"""The map of a free-layout run: the training images' laid-out coordinates and what placing new images needs.

A free-layout run (``layout="free"``, the atlas presets) lays its training images out first (``layout.layout``:
a t-SNE-like map of free coordinates), then trains the tutorial's decoder from those coordinates and distils its
encoder onto them (the ``map`` term of the objective, ``losses.map``). A new image is placed as openTSNE's
``transform`` places one: it starts at the median map position of its nearest training images and is refined alone
against the frozen map (``layout.refine``).

:class:`PlacedMap` is that map as a module of the model, so it is saved with the weights and loaded with them
(``model.safetensors``, prefix ``map.``). It holds, for N training images of D features:

    coords      (N, dim)  the training images' positions, in the model's units (what the decoder takes)
    scale       ()        the map's kernel lengths per model unit, in the geometry's kernel lengths (``refine``'s
                          ``scale``): a map of the plane is stored at unit spread for the networks (t-SNE-like maps
                          span tens of kernel lengths: scale is that spread), one of a bounded space as it is (scale
                          1, or openTSNE's map sent onto the sphere: its own kernel, ``Sphere.from_flat_layout``)
    mean        (D,)      the training images' mean, and
    components  (C, D)    their first C = min(50, D) principal components: the neighbour index's projection
    projected   (N, C)    the training images projected, searched exactly for each new image's nearest

Stored size: 4 (N (dim + C) + D (C + 1)) bytes, 12.5 MB for Fashion-MNIST's 60,000 images, 0.8 MB for mnist-5k.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor, nn

from .errors import LatentAtlasError
from .layout import REFINE_STEPS, refine
from .layout_engines import check_engine, engine_for
from .progress import say

COMPONENTS = 50  # the neighbour index's principal components (openTSNE and UMAP search raw pixels; 50 keep ~86 %
# of mnist's variance, and the search costs 16x less than on 784 pixels)
K = 10  # neighbours of each training image in the layout's graph, and of each new image when placed: on mnist-5k
# 10 beat 7, 15 and 30 (docs/maps-research.md, "A free layout")
SEARCH_BLOCK = 2048  # new images searched against the index at a time, at most
SEARCH_BYTES = 2 ** 28  # and at most this much of their distances (256 MiB: at 2,048 x 240,000 they would take 2 GB)
BLOCK = 8192  # rows at a time of the principal components' sums and projections (memory, not results)


class PlacedMap(nn.Module):
    """The frozen map and its neighbour index (see the module's docstring); ``place`` puts new images on it."""

    def __init__(self, coords: Tensor, scale: Tensor, mean: Tensor, components: Tensor, projected: Tensor, *,
                 k: int = K, refine_steps: int = REFINE_STEPS, placement: str = "refine"):
        super().__init__()
        for name, t in (("coords", coords), ("scale", scale), ("mean", mean), ("components", components),
                        ("projected", projected)):
            self.register_buffer(name, t.float())
        self.k, self.refine_steps, self.placement = k, refine_steps, placement
        self.seconds = 0.0  # what fit_map took (the graph, the index and the layout): part of a run's training time

    @classmethod
    def like(cls, state: dict[str, Tensor], prefix: str = "map.", **settings) -> PlacedMap:
        """An empty map of the shapes that a saved state dict's ``map.*`` tensors have, for loading them into."""
        names = ("coords", "scale", "mean", "components", "projected")
        missing = [n for n in names if prefix + n not in state]
        if missing:
            raise LatentAtlasError(f"the weights lack the map's {', '.join(missing)}: a free-layout run needs its map "
                                   "to place new images (retrain it)")
        return cls(*(torch.empty_like(state[prefix + n]) for n in names), **settings)

    def neighbours(self, x: Tensor, k: int | None = None) -> Tensor:
        """(M, D) images in [0, 1] -> (M, k) indices of their nearest training images in the index (exact), searched
        a block of new images at a time so that the block's distances to every training image take at most
        ``SEARCH_BYTES``."""
        n = len(self.coords)
        k = min(self.k if k is None else k, n)
        rows = max(1, min(SEARCH_BLOCK, SEARCH_BYTES // (4 * n)))
        squares = self.projected.square().sum(1)  # (N,)
        out = []
        for i in range(0, len(x), rows):
            p = project(x[i:i + rows], self.mean, self.components)  # (b, C)
            d2 = torch.addmm(squares, p, self.projected.T, alpha=-2).add_(p.square().sum(1, keepdim=True))  # (b, N)
            out.append(d2.topk(k, dim=1, largest=False).indices)
        return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)

    def place(self, x: Tensor, geometry, seed: int = 0) -> Tensor:
        """(M, D) images in [0, 1] -> (M, dim) their positions, refined on the frozen map (model units)."""
        with torch.inference_mode(False), torch.enable_grad():  # refinement is gradient descent, wherever called
            nbrs = self.neighbours(x).clone().numpy()
            placed = refine(nbrs, self.coords.clone().numpy(), geometry, steps=self.refine_steps, seed=seed,
                            scale=float(self.scale))
        return torch.from_numpy(placed).to(self.coords.device)

    def extra_repr(self) -> str:
        return (f"{len(self.coords):,} points, {self.components.shape[0]} components, k={self.k}, "
                f"refine_steps={self.refine_steps}, placement={self.placement}")


# How a map's run places new images, in the words the demo, the report and the explorer show.
PLACED = {"refine": "test images placed on the laid-out map by refinement (as openTSNE's transform)",
          "encoder": "test images placed by the encoder's one pass"}


def placement_said(model) -> str | None:
    """How ``model`` places new images, in words (:data:`PLACED`), where it has a map; None where it has none."""
    placed = getattr(model, "map", None)
    return None if placed is None else PLACED[placed.placement]


def fit_map(x: Tensor, geometry, *, k: int = K, steps: int | None = None, refine_steps: int = REFINE_STEPS,
            placement: str = "refine", seed: int = 0, neighbours: np.ndarray | None = None,
            engine: str = "latentatlas", progress: bool | None = None) -> PlacedMap:
    """Lay out ``x`` (N, D) images in [0, 1] in ``geometry``'s space and build the index that places new ones.

    ``neighbours`` (N, k) is the training images' k-nearest-neighbour graph (``graph.knn_graph``); None builds it.
    The layout starts from the first principal components, so the same seed gives the same map. ``engine`` names
    what lays it out (``layout_engines.ENGINES``: latentatlas's own optimiser, or openTSNE's on the plane and, sent
    onto it, the sphere; "auto" decides by the space and the number of images, ``layout_engines.engine_for``).
    ``progress`` as
    ``layout.layout``'s, with a line first saying what is laid out (unless False).
    """
    from .graph import knn_graph

    t0 = time.perf_counter()
    x = torch.as_tensor(x).reshape(len(x), -1).float()
    n, d = x.shape
    if not 1 <= k < n:
        raise LatentAtlasError(f"layout_k={k} must be between 1 and the number of training images - 1 ({n - 1})")
    mean, components = principal_components(x, min(COMPONENTS, d, n))
    projected = project(x, mean, components)  # (N, C)
    graph = knn_graph(x.numpy(), k) if neighbours is None else neighbours
    start = projected[:, :geometry.dim].numpy()
    engine = engine_for(engine, geometry, n)
    lay = check_engine(engine, geometry)
    steps = lay.default_steps(n) if steps is None else steps
    if progress is not False:
        say(f"free layout: {n:,} points in the {geometry.name} space, {steps} steps of {engine}'s engine")
    raw, kernel = lay.lay_out(graph, geometry, seed=seed, init=start, steps=steps, progress=progress)
    raw = torch.from_numpy(raw)
    spread = raw.std().clamp(min=1e-12) if geometry.scalable else torch.tensor(1.0)
    placed = PlacedMap(raw / spread, spread * kernel, mean, components, projected, k=k, refine_steps=refine_steps,
                       placement=placement)
    placed.seconds = time.perf_counter() - t0
    return placed


def principal_components(x: Tensor, c: int) -> tuple[Tensor, Tensor]:
    """(mean (D,), components (c, D)) of the rows of ``x`` (N, D), from the covariance in float64 accumulated over
    blocks of rows (no float64 copy of ``x``); each component's sign is fixed (its largest entry positive), so the
    same data give the same components on any machine."""
    mean = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), BLOCK):
        mean += x[i:i + BLOCK].double().sum(0)
    mean /= len(x)
    cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), BLOCK):
        block = x[i:i + BLOCK].double() - mean
        cov += block.T @ block
    values, vectors = torch.linalg.eigh(cov)  # ascending
    top = vectors[:, values.argsort(descending=True)[:c]].T  # (c, D)
    top = top * torch.sign(top.gather(1, top.abs().argmax(1, keepdim=True)))
    return mean.float(), top.float()


def project(x: Tensor, mean: Tensor, components: Tensor) -> Tensor:
    """(N, D) rows -> (N, C) their coordinates on the components, a block of rows at a time (no centred copy of
    ``x``)."""
    blocks = [(x[i:i + BLOCK].float() - mean) @ components.T for i in range(0, len(x), BLOCK)]
    return torch.cat(blocks) if blocks else torch.zeros(0, len(components))


def map_size(n: int, dim: int, d: int) -> int:
    """Bytes a map of ``n`` training images of ``d`` features in a ``dim``-wide space stores (float32)."""
    c = min(COMPONENTS, d, n)
    return 4 * (n * (dim + c) + d * (c + 1) + 1)


ROUND_TRIP_GRID = 20  # the round trip's grid: 20 x 20 cells over each chart


def round_trip_points(model, chart, n: int = ROUND_TRIP_GRID) -> tuple[Tensor, Tensor]:
    """Points of a regular ``n`` x ``n`` grid over ``chart`` (cell centres: a bounded chart's whole domain, the
    sphere pole to pole; an unbounded one's box around the map) and where each comes back when decoded and placed
    again: how well the decoder and the placement invert each other, where the map has data and between its
    clusters. Returns (points, back), each (M, dim), M <= n * n (the cells inside the chart's domain)."""
    if chart.extent is not None:
        (u0, u1), (v0, v1) = chart.extent
    else:
        uv = chart.to_map(model.map.coords)
        (u0, v0), (u1, v1) = uv.min(0).values.tolist(), uv.max(0).values.tolist()
    cells = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    uu, vv = torch.meshgrid(u0 + cells * (u1 - u0), v0 + cells * (v1 - v0), indexing="ij")
    grid = torch.stack([uu.reshape(-1), vv.reshape(-1)], 1)
    if chart.inside is not None:
        grid = grid[chart.inside(grid)]
    points = model.geometry(chart.from_map(grid).to(model.map.coords.device)).mode
    with torch.inference_mode():
        images = model.decode(points)
    return points, model.encode(images)


def round_trip(model, n: int = ROUND_TRIP_GRID) -> float:
    """The median distance back of :func:`round_trip_points` over the grids of every chart the geometry draws, as
    a share of the map's diameter."""
    distances = [(back - points).norm(dim=1) for points, back in
                 (round_trip_points(model, chart, n) for chart in model.geometry.charts())]
    return float(torch.cat(distances).median()) / diameter(model.map.coords)


def diameter(z: Tensor) -> float:
    """The largest distance between two points of the map: between the vertices of its convex hull."""
    from scipy.spatial import ConvexHull

    z = z.double()
    if len(z) > z.shape[1] + 1:
        z = z[torch.from_numpy(ConvexHull(z.numpy()).vertices)]
    return max(float(torch.cdist(z[i:i + 2048], z).max()) for i in range(0, len(z), 2048))
