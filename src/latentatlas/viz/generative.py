"""Figures of a latent space with a prior: images decoded from prior samples, traversals along each latent
direction (geodesics on the sphere and the torus, axes of the plane), and the posterior's spread on the encoder map.

Each figure needs what the geometry offers (``sample_prior``, ``traversal``, a posterior ``spread``); the list of a
run's figures (``viz.figures``) leaves it out where the geometry offers nothing.
"""

from __future__ import annotations


import numpy as np
import torch

from ..metrics import decode
from .._tensors import as_tensor, to_unit_float
from .plots import map_limits, plt


def prior_samples(model, shape, n: int = 64, seed: int = 0):
    """Images decoded from ``n`` points drawn from the prior (seeded), on a square grid."""
    z = model.geometry.sample_prior(n, generator=torch.Generator().manual_seed(seed))
    side = int(np.ceil(np.sqrt(n)))
    images = np.full((side * side, int(np.prod(shape))), np.nan, np.float32)
    images[:n] = decode(model, z.numpy())
    mosaic = images.reshape(side, side, *shape).transpose(0, 2, 1, 3).reshape(side * shape[0], side * shape[1])
    fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=plt.get_cmap("gray").with_extremes(bad="0.85"), vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(f"Decoded samples of the prior ({model.geometry.name})", fontsize=9)
    return fig


def traversals(model, shape, n: int = 11, max_paths: int = 10):
    """One row per latent direction: images decoded along the geometry's path for it (``geometry.traversal``)."""
    paths, labels = model.geometry.traversal(n)
    paths, labels = paths[:max_paths], labels[:max_paths]
    images = decode(model, paths.reshape(-1, paths.shape[-1]).numpy()).reshape(len(paths), n, *shape)
    fig, axes = plt.subplots(len(paths), n, figsize=(0.75 * n + 1.6, 0.8 * len(paths) + 0.5), squeeze=False,
                             layout="constrained")
    for i in range(len(paths)):
        for j in range(n):
            axes[i, j].imshow(images[i, j], cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(labels[i], fontsize=6, rotation=0, ha="right", va="center")
    axes[0, 0].set_title("Latent traversals", fontsize=9, loc="left")  # the figure's own title line names the run
    return fig


@torch.inference_mode()
def posterior_spread(model, x, batch_size: int = 4096) -> tuple[np.ndarray | None, str]:
    """(N,) the posterior's spread for each sample (sigma, kappa: the posterior says which), or None for a point
    mass; and its label."""
    model.eval()
    device = next(model.parameters()).device
    x = as_tensor(x).reshape(len(x), -1)
    out, label = [], ""
    for i in range(0, len(x), batch_size):
        post = model.geometry(model.encoder(to_unit_float(x[i : i + batch_size].to(device))))
        if post.spread is None:
            return None, ""
        out.append(post.spread.float().cpu())
        label = post.spread_label
    return torch.cat(out).numpy(), label


def spread_map(chart, z: np.ndarray, spread: np.ndarray, label: str):
    """The encoder map with each test point coloured by its posterior's spread (log scale where it spans a lot)."""
    from matplotlib.colors import LogNorm

    uv = chart.to_map(torch.as_tensor(z)).numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    positive = spread.min() > 0 and spread.max() / spread.min() > 20
    dots = ax.scatter(uv[:, 0], uv[:, 1], c=spread, s=4, linewidths=0, cmap="magma",
                      norm=LogNorm() if positive else None)
    fig.colorbar(dots, ax=ax, label=label)
    (x0, x1), (y0, y1) = map_limits(chart, uv)
    ax.set(xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1))
    if chart.extent is not None:
        ax.set_aspect("equal", adjustable="box")
    ax.set(xlabel=chart.labels[0], ylabel=chart.labels[1], title=f"Posterior spread ({chart.name})")
    return fig
