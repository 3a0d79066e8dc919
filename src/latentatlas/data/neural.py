"""Synthetic neural populations whose state lives on a ring or a torus, with the true angles kept for scoring.

``head-direction``: N cells with von Mises tuning to the animal's heading (Taube 1990; the population's state is a
ring, Chaudhuri et al. 2019). ``grid-cells``: N cells of one grid module, each firing on a hexagonal lattice of
positions; their state is a 2-torus of the two lattice phases (Gardner et al. 2022). The animal's heading or
position follows a random walk in time bins; spike counts are Poisson in each bin. A sample is one time bin: for
each of the N cells, whether it spiked (1.0) or not (0.0). Binary, so that the decoder's Bernoulli likelihood is the
data's exact one: counts scaled to [0, 1] instead made the BCE worth about a fourteenth of the counts' likelihood,
and the variational latents' KL then drowned the grid cells' phases (the KL fell to about 1 nat). Labels are coarse bins of
the true angles (for colouring maps and k-NN scores); ``factors_train``/``factors_test`` hold the angles themselves
in radians. Everything is seeded: the same source gives the same data every time.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .dataset import Dataset


class _Population:
    name: ClassVar[str]
    description: ClassVar[str]
    n_cells: ClassVar[int] = 64
    n_bins: ClassVar[int] = 10_000  # time bins; 8,000 train / 2,000 test, split at random (seeded)
    n_test: ClassVar[int] = 2_000
    peak_rate: ClassVar[float] = 4.0  # expected spikes per bin at a cell's preferred angle: P(spike) = 0.98
    base_rate: ClassVar[float] = 0.1  # expected spikes per bin far from it: P(spike) = 0.095
    seed: ClassVar[int] = 0
    factors_label: ClassVar[str]  # the colour bar's title of the true angles, which colour maps by default

    def available_offline(self) -> bool:
        return True

    def states(self, rng: np.random.Generator) -> np.ndarray:  # (n_bins, k) true angles in [0, 2 pi)
        raise NotImplementedError

    def tuning(self, angles: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # (n_bins, n_cells) in [0, 1]
        raise NotImplementedError

    def labels(self, angles: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def load(self) -> Dataset:
        rng = np.random.default_rng(self.seed)
        angles = self.states(rng)
        rates = self.base_rate + (self.peak_rate - self.base_rate) * self.tuning(angles, rng)
        x = (rng.poisson(rates) > 0).astype(np.float32)
        test = np.zeros(len(x), bool)
        test[rng.choice(len(x), self.n_test, replace=False)] = True
        y = self.labels(angles).astype(np.int64)
        return Dataset(self.name, x[~test], y[~test], x[test], y[test], classes=self.class_names(),
                       factors_train=angles[~test], factors_test=angles[test], factors_label=self.factors_label)

    def class_names(self) -> tuple[str, ...]:
        raise NotImplementedError


class HeadDirection(_Population):
    """64 head-direction cells, von Mises tuning (concentration 4) with preferred directions spread at random."""

    name = "head-direction"
    factors_label = "true heading (rad)"
    description = "synthetic head-direction cells (64, spiked or not per bin), 8,000 / 2,000 bins; a ring"
    concentration: ClassVar[float] = 4.0
    step: ClassVar[float] = 0.15  # s.d. of the heading's change per bin, radians
    sectors: ClassVar[int] = 8

    def states(self, rng):
        return np.mod(np.cumsum(rng.normal(0.0, self.step, self.n_bins)) + rng.uniform(0, 2 * np.pi), 2 * np.pi)[:, None]

    def tuning(self, angles, rng):
        preferred = rng.uniform(0, 2 * np.pi, self.n_cells)
        return np.exp(self.concentration * (np.cos(angles - preferred) - 1))  # von Mises, 1 at the preferred angle

    def labels(self, angles):
        return np.floor(angles[:, 0] / (2 * np.pi) * self.sectors).astype(int) % self.sectors

    def class_names(self):
        w = 360 // self.sectors
        return tuple(f"{k * w}-{(k + 1) * w} deg" for k in range(self.sectors))


class GridCells(_Population):
    """300 cells of one grid module in a 1 m box (spacing 0.3 m); each fires on the lattice of the module, shifted by
    its own phase. Tuning: exp(c (cos p1 + cos p2 - 2)) of the differences p1, p2 between the animal's two lattice
    phases and the cell's: a von Mises bump in each phase, periodic on the (hexagonal) lattice. (Real grid fields are
    round, the sum of three plane waves at 60 degrees; that tuning lives on the same torus, but the product form
    keeps its two circles separate, the simplest torus to recover.)"""

    name = "grid-cells"
    factors_label = "true lattice phases (rad)"
    description = "synthetic grid cells of one module (300, spiked or not per bin), 8,000 / 2,000 bins; a torus"
    # 300 cells: a decoder that knows every cell's true tuning (maximum likelihood on a 64 x 64 grid of phases)
    # reaches a circular correlation of 0.948 from 100 cells' spikes in a bin, 0.976 from 200, 0.984 from 300; the
    # issue's bar of 0.95 for a learned torus needs the data to allow more than that.
    n_cells = 300
    concentration: ClassVar[float] = 2.0
    box: ClassVar[float] = 1.0  # metres
    spacing: ClassVar[float] = 0.3  # metres between grid fields
    step: ClassVar[float] = 0.02  # s.d. of the position's change per bin and axis, metres
    bins_per_phase: ClassVar[int] = 3

    def states(self, rng):
        pos = np.empty((self.n_bins, 2))
        p = rng.uniform(0, self.box, 2)
        for t in range(self.n_bins):  # a random walk reflected at the walls
            p = p + rng.normal(0, self.step, 2)
            p = np.abs(p)
            p = self.box - np.abs(self.box - p)
            pos[t] = p
        # The lattice's basis: spacing * (1, 0) and spacing * (1/2, sqrt 3 / 2); the phases are the position's
        # coordinates in that basis, times 2 pi, modulo 2 pi.
        basis = self.spacing * np.array([[1.0, 0.5], [0.0, np.sqrt(3) / 2]])
        return np.mod(2 * np.pi * pos @ np.linalg.inv(basis).T, 2 * np.pi)

    def tuning(self, angles, rng):
        offsets = rng.uniform(0, 2 * np.pi, (2, self.n_cells))
        p1 = angles[:, :1] - offsets[0]
        p2 = angles[:, 1:] - offsets[1]
        return np.exp(self.concentration * (np.cos(p1) + np.cos(p2) - 2))

    def labels(self, angles):
        b = np.floor(angles / (2 * np.pi) * self.bins_per_phase).astype(int) % self.bins_per_phase
        return b[:, 0] * self.bins_per_phase + b[:, 1]

    def class_names(self):
        k = self.bins_per_phase
        return tuple(f"phases ({i}, {j}) of {k}" for i in range(k) for j in range(k))


POPULATIONS = (HeadDirection(), GridCells())
