"""The neighbour-embedding term: latent points of neighbours in input space are pulled together, others apart.

Contrastive neighbour embedding (Damrich et al., ICLR 2023, "From t-SNE to UMAP with contrastive learning"): every
edge (i, j) of the training set's symmetrised k-nearest-neighbour graph that falls inside a batch is a positive
pair, every other point of the batch a negative, and the loss is InfoNCE with the geometry's heavy-tailed kernel q
(``Geometry.log_similarity``):

    mean over in-batch edges (i, j) of  -log q_ij + log sum_{k != i} q_ik

Plain shuffled batches of 128 hold almost no edges, so the term draws its own batches (``NeighbourBatches``): half
the batch are seeds, each followed by one of its neighbours. An epoch keeps the plain model's number of steps, so
the term costs the same per epoch, plus the graph once (cached on disk).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import LatentAtlasError
from .base import Batch, Term

# The steps the term needs before its map separates: on mnist-5k 5-NN rose from 0.65 at 320 steps to 0.77-0.81
# at 1,920 and 0.81 at 5,760 (docs/maps-research.md). The demo trains its atlas runs for at least this many.
NEIGHBOUR_STEPS = 2000


class NeighbourEmbedding(Term):
    name = "neighbours"
    on_unseen = False  # needs each sample's neighbours in the training set

    def __init__(self, neighbours: np.ndarray, log_similarity, weight: float = 1.0):
        super().__init__(weight)
        self.rowptr, self.cols = symmetrised(neighbours)  # CSR of the union of i -> j and j -> i
        n = len(neighbours)
        self.n = n
        rows = torch.repeat_interleave(torch.arange(n), self.rowptr.diff())
        self.keys = (rows * n + self.cols).sort().values  # (E,) sorted edge keys, for in-batch lookups
        self.log_similarity = log_similarity

    @classmethod
    def from_config(cls, cfg, geometry, x_train=None) -> NeighbourEmbedding | None:
        if not cfg.ne_weight:
            return None
        if x_train is None:
            raise LatentAtlasError("the neighbour-embedding term needs the training set to build its graph")
        from ..graph import knn_graph

        if cfg.ne_k >= len(x_train):
            raise LatentAtlasError(f"ne_k={cfg.ne_k} must be smaller than the number of training samples "
                                   f"({len(x_train)})")
        return cls(knn_graph(x_train, cfg.ne_k), geometry.log_similarity, cfg.ne_weight)

    def batch_sampler(self, batch_size: int) -> NeighbourBatches:
        return NeighbourBatches(self.rowptr, self.cols, batch_size)

    def forward(self, batch: Batch, out) -> Tensor:
        index = batch.index
        if self.keys.device != index.device:
            self.keys = self.keys.to(index.device)
        edges = self._adjacency(index).float()  # (B, B)
        # In fp32 even under bf16 autocast: d^2 = |a|^2 + |b|^2 - 2 a.b cancels, and a plane's points grow to tens.
        with torch.autocast(index.device.type, enabled=False):
            lq = self.log_similarity(out.z.float())  # (B, B)
        eye = torch.eye(len(index), dtype=torch.bool, device=index.device)
        lse = torch.logsumexp(lq.masked_fill(eye, -math.inf), dim=1)  # (B,) log of the batch's normaliser
        return (edges * (lse[:, None] - lq)).sum() / edges.sum().clamp(min=1)

    def _adjacency(self, index: Tensor) -> Tensor:
        """(B,) sample indices -> (B, B) bool: which pairs of the batch are edges of the graph."""
        keys = (index[:, None] * self.n + index[None, :]).reshape(-1)
        pos = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        found = (self.keys[pos] == keys).reshape(len(index), len(index))
        return found & (index[:, None] != index[None, :])  # a sample drawn twice is not its own neighbour

    def extra_repr(self) -> str:
        return f"weight={self.weight}, n={self.n}, edges={len(self.cols)}"


class NeighbourBatches:
    """Batches of seeds, each followed by ``group - 1`` neighbours drawn at random from the graph, so that a batch
    holds edges to learn from. An epoch is as many batches as plain shuffling gives (the same cost per epoch);
    the seeds are a fresh permutation each epoch."""

    def __init__(self, rowptr: Tensor, cols: Tensor, batch_size: int, group: int = 2):
        if batch_size < group:
            raise LatentAtlasError(f"batch_size={batch_size} is too small for the neighbour term: it needs >= {group}")
        self.rowptr, self.cols, self.batch_size, self.group = rowptr, cols, batch_size, group

    def n_batches(self, n: int) -> int:
        return math.ceil(n / self.batch_size)

    def __call__(self, n: int, generator: torch.Generator, epoch: int = 0) -> list[Tensor]:
        per = self.batch_size // self.group  # seeds per batch
        needed = self.n_batches(n) * per
        seeds = torch.cat([torch.randperm(n, generator=generator) for _ in range(math.ceil(needed / n))])[:needed]
        rep = seeds.repeat_interleave(self.group - 1)
        degree = self.rowptr.diff()
        pick = (torch.rand(len(rep), generator=generator) * degree[rep]).long()
        neighbours = self.cols[self.rowptr[rep] + pick].view(-1, per * (self.group - 1))
        return list(torch.cat([seeds.view(-1, per), neighbours], dim=1))


def symmetrised(neighbours: np.ndarray) -> tuple[Tensor, Tensor]:
    """(n, k) neighbour lists -> CSR (rowptr (n + 1,), cols (E,)) of the union of both directions, no duplicates."""
    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    cols = np.asarray(neighbours, np.int64).ravel()
    keys = np.unique(np.concatenate([rows * n + cols, cols * n + rows]))  # sorted, so CSR order for free
    src, dst = keys // n, keys % n
    rowptr = np.zeros(n + 1, np.int64)
    np.add.at(rowptr, src + 1, 1)
    return torch.from_numpy(np.cumsum(rowptr)), torch.from_numpy(dst)
