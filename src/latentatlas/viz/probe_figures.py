"""Figures of ``latentatlas probe``: curves per corruption (several runs on one axis), corrupted inputs and their
reconstructions per level, trails on the map from clean points to their corrupted versions, and where classes
never seen in training land. Maps go through the geometry's charts, as every map does."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.patches import Polygon

from .plots import map_figsize, draw_outline, map_limits, mpl_text, plt
from .style import class_colour, class_name

CURVES = (("mse", "MSE against the clean image"), ("knn5", "5-NN accuracy"),
          ("shift_rel", "shift on the map\n(/ mean distance of two points)"))


def probe_curves(results: list[tuple[str, dict]]):
    """One column per corruption, one row per measure; each run (label, probe.json) is a line on every axis."""
    names = list(dict.fromkeys(name for _, r in results for name in r["corruptions"]))
    fig, axes = plt.subplots(len(CURVES), max(1, len(names)), figsize=(3.6 * max(1, len(names)), 7.2),
                             squeeze=False, layout="constrained")
    for j, name in enumerate(names):
        for i, (key, ylabel) in enumerate(CURVES):
            ax = axes[i, j]
            for label, r in results:
                rows = r["corruptions"].get(name)
                if rows:
                    ax.plot([row["level"] for row in rows], [_nan(row.get(key)) for row in rows], "o-", ms=3,
                            label=mpl_text(label))
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(ylabel, fontsize=9)
            if i == len(CURVES) - 1:
                label = next((r["labels"][name] for _, r in results if name in r.get("labels", {})), name)
                ax.set_xlabel(label, fontsize=9)
        axes[0, j].set_title(name)
    axes[0, -1].legend(fontsize=7)
    return fig


def corruption_grid(name: str, levels, grids, shape):
    """One row per level: each picked test image corrupted (left) beside its reconstruction (right)."""
    h, w = shape
    n = len(grids[0][0])
    gap, pair_gap = 1, 5
    width = n * (2 * w + gap) + (n - 1) * pair_gap
    mosaic = np.full((len(levels) * (h + pair_gap) - pair_gap, width), np.nan, np.float32)
    for i, (x_in, recon) in enumerate(grids):
        top = i * (h + pair_gap)
        for j in range(n):
            left = j * (2 * w + gap + pair_gap)
            mosaic[top : top + h, left : left + w] = np.asarray(x_in[j], np.float32).reshape(shape)
            mosaic[top : top + h, left + w + gap : left + 2 * w + gap] = np.asarray(recon[j]).reshape(shape)
    fig, ax = plt.subplots(figsize=(0.75 * n * 2 + 1.2, 0.75 * len(levels) + 0.9), layout="constrained")
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=plt.get_cmap("gray").with_extremes(bad="white"), vmin=0, vmax=1)
    ax.set_yticks([i * (h + pair_gap) + h / 2 for i in range(len(levels))], [f"{v:g}" for v in levels])
    ax.set_xticks([])
    ax.set_ylabel(name)
    ax.set_title(f"{name}: each input (left) and its reconstruction (right), per level", fontsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def trails_map(chart, name: str, levels, z0, zs, y, z_all=None, title: str | None = None):
    """Test points at their clean places (dots) and the path their latents take as the corruption grows (lines,
    ending in a cross at the largest level); ``zs`` (levels, n, dim). On a bounded chart a step that wraps around
    its edge (the sphere's phi = +-pi) is not drawn across the map. ``title`` replaces the corruption's own."""
    def to_map(z):
        return chart.to_map(torch.as_tensor(np.asarray(z, np.float32))).numpy()

    uv0 = to_map(z0)
    path = np.stack([uv0, *(to_map(z) for z in zs)])  # (levels + 1, n, 2)
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    if z_all is not None:
        uv_all = to_map(z_all)
        ax.scatter(uv_all[:, 0], uv_all[:, 1], s=2, color="0.85", linewidths=0)
    steps = np.stack([path[:-1], path[1:]], axis=2)  # (levels, n, 2 ends, 2): one segment per step, one artist
    colours = np.broadcast_to(np.array([class_colour(v) for v in y]), steps.shape[:2])
    segments, segment_colours = seam_split(chart, steps.reshape(-1, 2, 2), colours.reshape(-1))
    trails = LineCollection(segments, colors=segment_colours, linewidths=0.8, alpha=0.8)
    ax.add_collection(trails)
    edge = chart.boundary()
    if edge is not None:  # the pieces of a step that crossed a seam end at the domain's edge
        trails.set_clip_path(Polygon(edge, closed=True, transform=ax.transData))
    draw_outline(ax, chart)
    ax.scatter(path[-1, :, 0], path[-1, :, 1], s=14, marker="x", c=[class_colour(v) for v in y], linewidths=0.8)
    ax.scatter(uv0[:, 0], uv0[:, 1], s=14, c=[class_colour(v) for v in y], edgecolors="k", linewidths=0.4, zorder=3)
    (x0, x1), (y0, y1) = map_limits(chart, np.concatenate([path.reshape(-1, 2), uv0] +
                                                          ([to_map(z_all)] if z_all is not None else [])))
    ax.set(xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1), xlabel=chart.labels[0], ylabel=chart.labels[1])
    if chart.extent is not None:
        ax.set_aspect("equal", adjustable="box")
        fig.set_size_inches(*map_figsize(chart, (x1 - x0) / (y1 - y0)))  # the chart's own shape: no white bands
    ax.set_title(title or f"{name} {levels[0]:g} to {levels[-1]:g}: {path.shape[1]} test points move ({chart.name})",
                 fontsize=9)
    return fig


def seam_split(chart, segments: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, 2 ends, 2) map segments, those that cross one of the chart's seams (``Chart.seams``: ends more than half
    the extent apart along that axis) each drawn as two: from its start on past the edge, and into its end from
    beyond the other edge (clipped to the domain where drawn), so that no step runs across the map; ``colours``
    (S,) follow them."""
    if chart.extent is None or not any(chart.seams):
        return segments, colours
    width = np.array([hi - lo for lo, hi in chart.extent])
    jump = np.zeros(segments.shape[:1] + (2,))  # how many widths the end is from the start along each axis
    for axis in (0, 1):
        if chart.seams[axis]:
            d = segments[:, 1, axis] - segments[:, 0, axis]
            jump[:, axis] = np.round(d / width[axis])
    crossed = (jump != 0).any(1)
    if not crossed.any():
        return segments, colours
    c = segments[crossed]
    shift = jump[crossed] * width  # (C, 2)
    out = np.stack([c[:, 0], c[:, 1] - shift], 1)  # the start, then the end moved back across the seam
    into = np.stack([c[:, 0] + shift, c[:, 1]], 1)  # the start moved on across it, then the end
    return (np.concatenate([segments[~crossed], out, into]),
            np.concatenate([colours[~crossed], colours[crossed], colours[crossed]]))


def novelty_map(chart, z, y, unseen, classes=None):
    """Every test point on the chart; the classes seen in training as small dots, the unseen ones as large crosses
    edged in black, drawn on top."""
    uv = chart.to_map(torch.as_tensor(z)).numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    new = np.isin(y, unseen)
    for label in np.unique(y[~new]):
        m = y == label
        ax.scatter(uv[m, 0], uv[m, 1], s=3, color=class_colour(label), alpha=0.5, linewidths=0,
                   label=mpl_text(class_name(classes, label)))
    for label in np.unique(y[new]):
        m = y == label
        ax.scatter(uv[m, 0], uv[m, 1], s=22, marker="X", color=class_colour(label), edgecolors="k", linewidths=0.5,
                   label=mpl_text(f"{class_name(classes, label)} (never seen)"), zorder=3)
    (x0, x1), (y0, y1) = map_limits(chart, uv)
    ax.set(xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1), xlabel=chart.labels[0], ylabel=chart.labels[1])
    if chart.extent is not None:
        ax.set_aspect("equal", adjustable="box")
    ax.legend(markerscale=2, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(f"Where classes never seen in training land ({chart.name})", fontsize=9)
    return fig


def roc_figure(novelty: dict):
    """The ROC curve of the reconstruction error as a novelty score, with its AUC."""
    fig, ax = plt.subplots(figsize=(4.2, 4), layout="constrained")
    ax.plot(novelty["roc"]["fpr"], novelty["roc"]["tpr"], "-", label=f"AUC {novelty['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="0.5", label="chance")
    ax.set(xlabel="seen images flagged (false positive rate)", ylabel="unseen images flagged (true positive rate)",
           xlim=(0, 1), ylim=(0, 1))
    ax.set_title(f"Novelty: classes {', '.join(map(str, novelty['classes']))} never seen", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def _nan(v):
    return np.nan if v is None else v
