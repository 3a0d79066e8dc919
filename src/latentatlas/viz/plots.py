"""Figures of a run: loss curves, reconstructions, encoder maps, decoder grids, parameter table, 3-D latents.

Which figures a run has is decided once, in ``viz.figures``. Every map is drawn through the charts the geometry
offers (``geometry.charts()``), so nothing here knows whether the latent space is a plane or a sphere.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # in a notebook the kernel's inline backend shows the figures returned here
    matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .._io import atomic_write_bytes, shown  # noqa: E402
from ..geometries import Chart, Embedding3D  # noqa: E402
from ..metrics import decode  # noqa: E402
from ..model import AutoencoderNet, parameter_table  # noqa: E402
from .colour import ColorBy  # noqa: E402
from .style import class_colour, class_name, plain_label  # noqa: E402


def image_shape(dataset, n_features: int) -> tuple[int, int] | None:
    """(H, W) to draw samples as images, or None when the samples are not images."""
    shape = tuple(dataset.image_shape)
    if len(shape) == 2:
        return shape
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else None


def loss_curves(history: list[dict]):
    fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")  # constrained: no label cut off at the edge
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train (mean over the epoch's batches)")
    if history and "test_loss" in history[0]:
        ax.plot(epochs, [r["test_loss"] for r in history], "s-", label="test")
    # An objective of several terms: each one's train curve too, unweighted, by its name.
    names = list(history[-1].get("terms", {}).get("train", {})) if history else []
    if len(names) > 1:
        for name in names:
            ax.plot(epochs, [r.get("terms", {}).get("train", {}).get(name) for r in history], "--",
                    label=f"train: {name} (unweighted)")
    ax.set(xlabel="epoch", ylabel="loss per pixel", title="Loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if epochs and len(epochs) < 12:
        ax.set_xticks(epochs)  # whole epochs, not 0.5 steps
    return fig


def reconstructions(model: AutoencoderNet, x, y, shape, n: int = 10):
    """Top row: one test image per class; bottom row: its reconstruction."""
    idx = _one_per_class(y, n)
    xb = torch.as_tensor(np.asarray(x[idx]))
    originals = xb.float().numpy() / (255.0 if xb.dtype == torch.uint8 else 1.0)
    model.eval()
    with torch.inference_mode():
        dev = next(model.parameters()).device
        recon = model.decode(model.encode(torch.as_tensor(originals, device=dev))).float().cpu().numpy()
    fig, axes = plt.subplots(2, len(idx), figsize=(1.1 * len(idx), 2.6), squeeze=False, layout="constrained")
    for j in range(len(idx)):
        for i, img in enumerate((originals[j], recon[j])):
            axes[i, j].imshow(img.reshape(shape), cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_axis_off()
    axes[0, 0].set_title("original", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    return fig


def encoder_map(chart: Chart, z: np.ndarray, y: np.ndarray, glyphs: bool = False, classes=None,
                colour: ColorBy | None = None):
    """Every test point at its chart coordinates, coloured by class (or by ``colour``'s values, with a colour bar);
    ``glyphs`` draws each as its label. The axes span the chart's extent, or for an unbounded chart the points' own
    range (:func:`map_limits`); a domain that is not the whole box (the equal-area ellipse) is outlined."""
    uv = chart.to_map(torch.as_tensor(z)).numpy()
    (x0, x1), (y0, y1) = map_limits(chart, uv)
    fig, ax = plt.subplots(figsize=map_figsize(chart, (x1 - x0) / (y1 - y0)), layout="constrained")
    draw_outline(ax, chart)
    draw_classes(ax, uv, y, classes, glyphs, colour=colour)
    ax.set(xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1))
    if chart.extent is not None:
        ax.set_aspect("equal", adjustable="box")  # a bounded chart's units mean the same across and up
    ax.set(xlabel=chart.labels[0], ylabel=chart.labels[1], title=f"Encoder map ({chart.name}, {len(z):,} test points)")
    return fig


def pca_map(points: np.ndarray, y: np.ndarray, classes=None, glyphs: bool = False, ax=None,
            colour: ColorBy | None = None):
    """Latent points (N, 3) projected onto their first two principal axes: a flat map of a 3-D latent space
    that has no chart of its own, labelled as a projection (with the share of the variance each axis holds)."""
    uv, share = principal_axes(points)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 5.2), layout="constrained")
    draw_classes(ax, uv, y, classes, glyphs, legend=fig is not None, colour=colour)
    ax.set_aspect("equal", adjustable="datalim")  # a projection: the same units across and up
    ax.set(xlabel=f"principal axis 1 ({share[0]:.0%} of variance)", ylabel=f"principal axis 2 ({share[1]:.0%})",
           title=f"Encoder map (3-D latents, first two principal axes, {len(points):,} test points)")
    return fig


def principal_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) coordinates of centred ``points`` on their first two principal axes, and the share of the variance
    on each; the sign of each axis is fixed (its largest loading positive) so that reruns draw the same map."""
    x = np.asarray(points, np.float64)
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])[:, None]
    total = float((s**2).sum()) or 1.0
    return x @ vt[:2].T, s[:2] ** 2 / total


def map_figsize(chart: Chart, aspect: float) -> tuple[float, float]:
    """The figure size of a map: a bounded chart drawn to scale gets a figure of its own shape (the sphere's
    (phi, theta) chart is twice as wide as tall), so no white band is left above and below it."""
    if chart.extent is None:
        return (6.5, 5.5)
    width = 7.5 if aspect > 1.5 else 6.5
    return (width, max(3.2, (width - 1.6) / aspect + 1.0))  # about 1.6 in for the legend and labels, 1 in for titles


def draw_classes(ax, uv: np.ndarray, y: np.ndarray, classes, glyphs: bool, legend: bool = True,
                 colour: ColorBy | None = None) -> None:
    """Points coloured by class with a legend titled "class" beside the axes, or by ``colour``'s values with its
    colour bar; ``glyphs`` draws each point as its label, clipped to the axes like the dots."""
    rgb = None if colour is None else colour.rgb()
    if glyphs:
        for i, ((u, v), label) in enumerate(zip(uv, y)):
            ax.text(u, v, str(label), color=class_colour(label) if rgb is None else rgb[i], fontsize=7, ha="center",
                    va="center", alpha=0.8, clip_on=True)
    elif rgb is not None:
        ax.scatter(uv[:, 0], uv[:, 1], s=4, c=rgb, alpha=0.85, linewidths=0)
    else:
        for label in np.unique(y):
            m = y == label
            ax.scatter(uv[m, 0], uv[m, 1], s=4, color=class_colour(label), label=mpl_text(class_name(classes, label)),
                       alpha=0.75, linewidths=0)
    if not legend:
        return
    if colour is not None:
        colour.legend(ax.figure, ax)
    elif not glyphs:
        ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                  title="class", title_fontsize=8)


def draw_outline(ax, chart: Chart) -> None:
    """The edge of the chart's domain where it is not the axes' box (the equal-area map's ellipse)."""
    if chart.outline is not None:
        edge = np.asarray(chart.outline)
        ax.plot(edge[:, 0], edge[:, 1], color="0.45", lw=0.8, zorder=0)


def preservation_map(chart: Chart, z: np.ndarray, kept: np.ndarray):
    """Test points on the chart coloured by the share of their input-space neighbours the map keeps (0 to 1)."""
    uv = chart.to_map(torch.as_tensor(z)).numpy()
    (x0, x1), (y0, y1) = map_limits(chart, uv)
    fig, ax = plt.subplots(figsize=map_figsize(chart, (x1 - x0) / (y1 - y0)), layout="constrained")
    draw_outline(ax, chart)
    order = np.argsort(-kept)  # the worst kept on top, where they can be seen
    dots = ax.scatter(uv[order, 0], uv[order, 1], c=kept[order], cmap="viridis", vmin=0, vmax=1, s=4, linewidths=0)
    fig.colorbar(dots, ax=ax, label="share of 5 nearest neighbours kept", shrink=0.8)
    ax.set(xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1))
    if chart.extent is not None:
        ax.set_aspect("equal", adjustable="box")
    ax.set(xlabel=chart.labels[0], ylabel=chart.labels[1],
           title=f"Neighbourhood kept ({chart.name}, mean {kept.mean():.2f})")
    return fig


def map_limits(chart: Chart, uv: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """The chart's whole extent where it has one, else the data's range with a 5% margin (never empty)."""
    if chart.extent is not None:
        return chart.extent
    uv = np.asarray(uv, np.float64)
    lo, hi = uv.min(0), uv.max(0)
    pad = np.maximum(0.05 * (hi - lo), _min_span(lo, hi))  # a collapsed axis too
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def _min_span(lo, hi):
    """The least half-width an axis gets, so that data on a single point still has a scale."""
    return 1e-3 * np.maximum(1.0, np.abs(lo) + np.abs(hi))


def _widened(lo: float, hi: float) -> tuple[float, float]:
    pad = max(0.0, float(_min_span(lo, hi)) - (hi - lo) / 2)
    return lo - pad, hi + pad


def mpl_text(text: str) -> str:
    """A name shown as-is by matplotlib, which would read "$...$" as math (and fail on bad math); a non-UTF-8 file
    name's odd bytes, which no font draws, as U+FFFD."""
    return shown(str(text)).replace("$", r"\$")


def grid_points(chart: Chart, n: int, z_data: np.ndarray | None = None):
    """A grid of chart coordinates with square cells, ``n`` rows, row-major from the top of the map.

    Returns the (rows * cols, 2) points, a (rows * cols,) mask of those inside the chart's domain, (rows, cols) and
    the map extent (u0, u1, v0, v1). A bounded chart spans its whole domain (the sphere: every azimuth, pole to
    pole); an unbounded one spans the data's 0.5-99.5 percentiles.
    """
    if chart.extent is not None:
        (u0, u1), (v0, v1) = chart.extent
    else:
        uv = chart.to_map(torch.as_tensor(z_data)).numpy()
        (u0, u1), (v0, v1) = (_widened(*np.percentile(uv[:, i], [0.5, 99.5])) for i in (0, 1))
    cols = max(1, round(n * (u1 - u0) / (v1 - v0))) if chart.extent is not None else n
    # Cell centres, so the edges of a bounded chart (the poles, phi = +-pi) are not sampled many times over.
    us = u0 + (np.arange(cols) + 0.5) * (u1 - u0) / cols
    vs = v0 + (np.arange(n) + 0.5) * (v1 - v0) / n
    if not chart.y_down:
        vs = vs[::-1]  # the top row holds the largest v
    uu, vv = np.meshgrid(us, vs)
    points = np.stack([uu.ravel(), vv.ravel()], 1).astype(np.float32)
    inside = np.ones(len(points), bool) if chart.inside is None else chart.inside(torch.as_tensor(points)).numpy()
    return points, inside, (n, cols), (u0, u1, v0, v1)


def decoder_grid(model: AutoencoderNet, chart: Chart, shape, n: int = 16, z_data=None):
    """Images decoded from a regular grid over the chart, in one batched forward pass; cells outside the chart's
    domain stay grey."""
    uv, inside, (rows, cols), (u0, u1, v0, v1) = grid_points(chart, n, z_data)
    images = np.full((len(uv), int(np.prod(shape))), np.nan, np.float32)
    images[inside] = decode(model, chart.from_map(torch.as_tensor(uv[inside])).numpy())
    mosaic = images.reshape(rows, cols, *shape).transpose(0, 2, 1, 3).reshape(rows * shape[0], cols * shape[1])
    fig, ax = plt.subplots(figsize=(0.42 * cols + 1.2, 0.42 * rows + 1.0), layout="constrained")
    cmap = plt.get_cmap("gray").with_extremes(bad="0.85")
    extent = (u0, u1, v1, v0) if chart.y_down else (u0, u1, v0, v1)  # imshow: (left, right, bottom, top)
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=0, vmax=1, aspect="auto", extent=extent)
    draw_outline(ax, chart)
    ax.set(xlabel=chart.labels[0], ylabel=chart.labels[1], title=f"Decoder grid ({chart.name}, {rows} x {cols})")
    return fig


def scatter_3d(points: np.ndarray, y: np.ndarray, embedding: Embedding3D, classes=None, ax=None,
               colour: ColorBy | None = None):
    """The test latents at their places in the geometry's 3-D picture (``embedding.to_3d``): opaque dots large
    enough to see, the surface's wireframe behind them where the space is a surface, a class legend."""
    fig = None
    if ax is None:
        fig = plt.figure(figsize=(7.5, 6.2), layout="constrained")
        ax = fig.add_subplot(projection="3d")
    for line in embedding.wireframe:  # the sphere's graticule: where on the surface the points are
        w = np.asarray(line)
        ax.plot(w[:, 0], w[:, 1], w[:, 2], color="0.6", lw=0.5, alpha=0.6)
    # On a surface, the points on its far side are drawn faint and small, so the near side reads as in front.
    elev, azim = np.radians(ax.elev), np.radians(ax.azim)
    toward_viewer = np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    near = points @ toward_viewer >= 0 if embedding.is_surface else np.ones(len(points), bool)
    if colour is not None:
        rgb = colour.rgb()
        ax.scatter(*points[~near].T, c=rgb[~near], s=3, alpha=0.2, linewidths=0, depthshade=False)
        ax.scatter(*points[near].T, c=rgb[near], s=8, alpha=1.0, linewidths=0, depthshade=False)
    for label in np.unique(y) if colour is None else ():
        m = y == label
        name = mpl_text(class_name(classes, label))
        ax.scatter(*points[m & ~near].T, color=class_colour(label), s=3, alpha=0.2, linewidths=0, depthshade=False)
        ax.scatter(*points[m & near].T, color=class_colour(label), s=8, alpha=1.0, linewidths=0, depthshade=False,
                   label=name)
    if embedding.radius is not None:
        r = 1.05 * embedding.radius
        ax.set(xlim=(-r, r), ylim=(-r, r), zlim=(-r, r))
    if embedding.is_surface:  # the surface is the reference: the box's grid only clutters it
        ax.grid(False)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_pane_color((1, 1, 1, 0))
    ax.set_aspect("equal")  # a unit is a unit on every axis, or the picture misleads about distances
    x, yl, zl = embedding.axis_labels
    far = "; far side faint" if embedding.is_surface else ""
    ax.set(xlabel=x, ylabel=yl, zlabel=zl, title=f"{embedding.title}: the test set ({len(points):,} points{far})")
    if fig is not None and colour is not None:
        colour.legend(fig, ax)
    elif fig is not None:
        ax.legend(markerscale=2, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False,
                  title="class", title_fontsize=8)
    return fig


def globe_html(points: np.ndarray, y: np.ndarray, embedding: Embedding3D, classes=None,
               colour: ColorBy | None = None) -> str:
    """An interactive, rotatable 3-D scatter with plotly.js inlined (opens offline)."""
    return globe_figure(points, y, embedding, classes, colour).to_html(include_plotlyjs=True, full_html=True)


def globe_figure(points: np.ndarray, y: np.ndarray, embedding: Embedding3D, classes=None,
                 colour: ColorBy | None = None):
    """A plotly 3-D scatter of embedded latents, one trace per class (or one coloured by ``colour``'s values), over
    the space's surface (faintly) where the geometry draws one."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if embedding.surface is not None:
        sx, sy, sz = (0.99 * a for a in embedding.surface())  # just inside, so the points sit on top
        fig.add_trace(go.Surface(x=sx, y=sy, z=sz, opacity=0.25, showscale=False, hoverinfo="skip",
                                 colorscale=[[0, "rgb(225,225,232)"], [1, "rgb(225,225,232)"]],
                                 name=embedding.title))
    for line in embedding.wireframe:  # the graticule: parallels and meridians, so the sphere reads as a globe
        w = np.asarray(line)
        fig.add_trace(go.Scatter3d(x=w[:, 0], y=w[:, 1], z=w[:, 2], mode="lines", showlegend=False,
                                   hoverinfo="skip", line=dict(color="rgb(160,160,170)", width=1)))
    if colour is not None:
        rgb = [f"rgb({r},{g},{b})" for r, g, b in np.round(255 * colour.rgb()).astype(int)]
        fig.add_trace(go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers",
                                   name=colour.label, marker=dict(size=3.5, color=rgb, opacity=1.0)))
    for label in np.unique(y) if colour is None else ():
        m = y == label
        fig.add_trace(go.Scatter3d(x=points[m, 0], y=points[m, 1], z=points[m, 2], mode="markers",
                                   name=class_name(classes, label),
                                   marker=dict(size=3.5, color=class_colour(label), opacity=1.0)))
    x, yl, zl = (plain_label(a) for a in embedding.axis_labels)
    fig.update_layout(scene=dict(aspectmode="data", xaxis_title=x, yaxis_title=yl, zaxis_title=zl),
                      margin=dict(l=0, r=0, t=30, b=0), title="Test latents",
                      legend=dict(itemsizing="constant", title="class" if colour is None else "colour",
                                  font=dict(size=13)))
    return fig


def parameter_figure(model: AutoencoderNet, title: str = ""):
    rows = parameter_table(model)
    total = sum(n for *_, n in rows)
    cells = [[name, layer, f"{n:,}"] for name, layer, n in rows] + [["", "total", f"{total:,}"]]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(cells) + 0.8), layout="constrained")
    ax.set_axis_off()
    table = ax.table(cellText=cells, colLabels=["module", "layer", "parameters"], loc="center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    ax.set_title(f"Trainable parameters: {title}", fontsize=9)
    return fig


def _one_per_class(y: np.ndarray, n: int) -> np.ndarray:
    firsts = [np.flatnonzero(y == c)[0] for c in np.unique(y)[:n]]
    return np.array(firsts if len(firsts) >= min(n, len(y)) else np.arange(min(n, len(y))))


def png_bytes(fig, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """``fig`` written as a PNG to ``path``, atomically."""
    return atomic_write_bytes(path, png_bytes(fig, dpi))
