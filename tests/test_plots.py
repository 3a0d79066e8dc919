"""Figures a student can read: maps sized to their chart, labels inside the figure, glyphs inside the axes, 3-D
scatters with a legend, and a principal-axes map of 3-D latents checked against scikit-learn's PCA."""

import numpy as np
import pytest
import torch

from latentatlas.geometries import get_geometry
from latentatlas.viz.plots import encoder_map, loss_curves, pca_map, principal_axes, scatter_3d


def sphere_points(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1).numpy()
    return z, np.arange(n) % 10


def inside_figure(fig, artist) -> bool:
    fig.canvas.draw()
    box = artist.get_window_extent()
    w, h = fig.canvas.get_width_height()
    return box.x0 >= 0 and box.y0 >= 0 and box.x1 <= w and box.y1 <= h


@pytest.mark.parametrize("chart_index", [0, 1])
def test_sphere_maps_fill_their_figure_without_white_bands(chart_index):
    chart = get_geometry("sphere", 3).charts()[chart_index]
    z, y = sphere_points()
    fig = encoder_map(chart, z, y)
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_window_extent()
    w, h = fig.canvas.get_width_height()
    assert box.height / h > 0.7  # the old 6.5 x 5.5 figure left the 2:1 chart a band of white above and below
    assert inside_figure(fig, ax.xaxis.label) and inside_figure(fig, ax.yaxis.label)
    assert len(ax.get_legend().get_texts()) == 10


def test_loss_curve_labels_are_not_clipped():
    history = [{"epoch": e, "train_loss": 0.3 / e, "test_loss": 0.31 / e} for e in range(1, 6)]
    fig = loss_curves(history)
    ax = fig.axes[0]
    assert inside_figure(fig, ax.xaxis.label) and inside_figure(fig, ax.yaxis.label)
    assert list(ax.get_xticks()) == [1, 2, 3, 4, 5]


def test_glyphs_stay_inside_their_axes():
    chart = get_geometry("euclidean", 2).charts()[0]
    z = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    fig = encoder_map(chart, z, np.arange(200) % 10, glyphs=True)
    texts = fig.axes[0].texts
    assert len(texts) == 200 and all(t.get_clip_on() for t in texts)


def test_principal_axes_equal_scikit_learns_pca():
    from sklearn.decomposition import PCA

    x = np.random.default_rng(1).normal(size=(300, 3)) * [5.0, 2.0, 0.5] + [1.0, -2.0, 3.0]
    uv, share = principal_axes(x)
    pca = PCA(2).fit(x)
    np.testing.assert_allclose(share, pca.explained_variance_ratio_, rtol=1e-6)
    np.testing.assert_allclose(np.abs(uv), np.abs(pca.transform(x)), atol=1e-8)  # up to each axis's sign
    again, _ = principal_axes(x[::-1])
    np.testing.assert_allclose(again[::-1], uv, atol=1e-8)  # the sign is fixed by the data, not by its order
    fig = pca_map(x, np.arange(300) % 10)
    assert fig.axes[0].get_xlabel().startswith("principal axis 1 (") and "principal axes" in fig.axes[0].get_title()


def test_the_globe_scatter_has_a_wireframe_a_legend_and_opaque_points():
    embedding = get_geometry("sphere", 3).embedding_3d()
    z, y = sphere_points()
    fig = scatter_3d(z, y, embedding)
    ax = fig.axes[0]
    assert len(ax.lines) == len(embedding.wireframe) > 0
    labelled = [c for c in ax.collections if not c.get_label().startswith("_")]
    assert [c.get_label() for c in labelled] == [str(k) for k in range(10)]
    assert all(c.get_alpha() == 1.0 and c.get_sizes()[0] >= 8 for c in labelled)
    assert len(ax.get_legend().get_texts()) == 10
