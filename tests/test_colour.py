"""Colouring by a value, and the figures people paste into slides: colour maps against matplotlib's own, angles
that wrap, the neural data sets' default, titles and legend titles, the equal-area outline, trails split at seams."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from latentatlas import ColorBy
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError
from latentatlas.geometries import get_geometry
from latentatlas.viz.colour import parse_color_by, resolve, torus_rgb
from latentatlas.viz.plots import encoder_map, plt
from latentatlas.viz.probe_figures import seam_split, trails_map


def test_continuous_values_take_viridis_from_their_min_to_their_max():
    v = np.array([2.0, 7.0, 4.5])
    rgb = ColorBy(v).rgb()
    viridis = matplotlib.colormaps["viridis"]
    np.testing.assert_allclose(rgb, viridis(np.array([0.0, 1.0, 0.5]))[:, :3])


def test_an_angle_and_the_same_angle_a_turn_later_share_a_colour():
    a = np.array([-math.pi + 0.1, 0.3, 2.0])
    colour = ColorBy(np.concatenate([a, a + 2 * math.pi]), "circular")
    rgb = colour.rgb()
    np.testing.assert_allclose(rgb[:3], rgb[3:], atol=1e-6)
    np.testing.assert_allclose(rgb[0], matplotlib.colormaps["twilight"](0.1 / (2 * math.pi))[:3], atol=1e-6)
    degrees = ColorBy(np.array([10.0, 370.0]), "circular", period=360.0).rgb()
    np.testing.assert_allclose(degrees[0], degrees[1], atol=1e-6)


def test_two_angles_wrap_in_each_and_no_two_phases_share_a_colour():
    a = np.linspace(-math.pi, math.pi, 24, endpoint=False)
    a1, a2 = (g.ravel() for g in np.meshgrid(a, a))
    rgb = torus_rgb(a1, a2)
    np.testing.assert_allclose(torus_rgb(a1 + 2 * math.pi, a2 - 2 * math.pi), rgb, atol=1e-9)
    d = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb))
    assert d.min() > 0.01  # one-to-one on a 24 x 24 grid of phases (the 8-bit step is 0.004)
    assert (rgb >= 0).all() and (rgb <= 1).all()


def test_spellings_and_refusals():
    assert parse_color_by("heading") == ("heading", "continuous", 2 * math.pi)
    assert parse_color_by("heading:circular=360") == ("heading", "circular", 360.0)
    for bad in ("heading:round", ":circular", "speed:continuous=3", "heading:circular=-1"):
        with pytest.raises(LatentAtlasError, match="color_by"):
            parse_color_by(bad)
    with pytest.raises(LatentAtlasError, match="two angles only"):
        ColorBy(np.zeros((3, 2)))
    with pytest.raises(LatentAtlasError, match="NaN"):
        ColorBy(np.array([0.0, np.nan]))


def test_neural_data_sets_colour_by_their_true_angles_by_default():
    hd, grid = load_dataset("head-direction"), load_dataset("grid-cells")
    heading = resolve(None, hd, len(hd.y_test))
    assert heading.kind == "circular" and heading.label == "true heading (rad)"
    np.testing.assert_array_equal(heading.values, hd.factors_test[:, 0])
    phases = resolve(None, grid, len(grid.y_test))
    assert phases.two_angles and phases.values.shape == (len(grid.y_test), 2)
    assert resolve("class", hd, len(hd.y_test)) is None
    with pytest.raises(LatentAtlasError, match="3 values for 2000 points"):
        resolve(np.arange(3.0), hd, 2000)


def test_a_value_map_has_a_titled_colour_bar_and_a_class_map_a_titled_legend():
    chart = get_geometry("sphere", 3).charts()[1]
    z = torch.nn.functional.normalize(torch.randn(200, 3, generator=torch.Generator().manual_seed(0)), dim=1).numpy()
    fig = encoder_map(chart, z, np.arange(200) % 4, colour=ColorBy(z[:, 2], label="height"))
    ax, bar = fig.axes
    assert bar.get_ylabel() == "height"
    # The equal-area map's outline: the ellipse x^2 / 8 + y^2 / 2 = 1 (the meridian phi = +-pi).
    (line,) = ax.get_lines()
    x, y = line.get_data()
    np.testing.assert_allclose(x**2 / 8 + y**2 / 2, 1, atol=1e-9)
    plt.close(fig)
    fig = encoder_map(chart, z, np.arange(200) % 4)
    assert fig.axes[0].get_legend().get_title().get_text() == "class"
    plt.close(fig)


def test_trails_that_cross_phi_pi_end_at_the_edge_and_go_on_from_the_other():
    chart = get_geometry("sphere", 3).charts()[0]  # equirectangular: phi across, its edges the same meridian
    seg = np.array([[[3.0, 1.0], [-3.0, 1.2]], [[0.0, 1.0], [0.5, 1.5]]])
    out, colours = seam_split(chart, seg, np.array(["a", "b"]))
    assert list(colours) == ["b", "a", "a"]
    np.testing.assert_allclose(out[1], [[3.0, 1.0], [-3.0 + 2 * math.pi, 1.2]])  # on past the right edge
    np.testing.assert_allclose(out[2], [[3.0 - 2 * math.pi, 1.0], [-3.0, 1.2]])  # in from beyond the left one
    ring = get_geometry("torus", 1).charts()[0]  # a ring's map has no seam: a long step is a long step
    assert seam_split(ring, seg, np.array(["a", "b"]))[0] is seg
    # Drawn: no segment of the figure spans more than half the map.
    z0 = np.array([[math.cos(3.0), math.sin(3.0), 0.0]], np.float32)
    zs = np.array([[[math.cos(-3.0), math.sin(-3.0), 0.0]]], np.float32)
    fig = trails_map(chart, "noise", [0.0, 1.0], z0, zs, np.array([0]))
    (trails,) = fig.axes[0].collections[:1]
    spans = [abs(p[1, 0] - p[0, 0]) for p in trails.get_segments()]
    assert len(spans) == 2 and all(s < 0.5 for s in spans)
    plt.close(fig)
