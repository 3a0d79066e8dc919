"""The one list of a run's figures: what ``latentatlas plot`` writes, what ``Run.figures()`` shows and what the
report inlines, each with its caption and the report's section. A new figure is one entry here, and every reader
gets it; none of them chooses figures of its own.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._guard import no_links_below
from ..atlas_map import ROUND_TRIP_GRID, diameter, round_trip_points
from .._io import atomic_write_text
from ..metrics import neighbourhood_preservation, trust_subset
from . import plots
from .colour import resolve
from .generative import posterior_spread, prior_samples, spread_map, traversals
from .probe_figures import trails_map


@dataclass(frozen=True)
class RunFigure:
    """One figure of a run, drawn only when asked (``draw()`` returns a matplotlib figure)."""

    name: str  # its file name without ".png": encoder_map_plane, prior_samples, ...
    section: str  # the report's section it belongs to (viz.report.SECTIONS)
    caption: str
    draw: Callable
    chart: str | None = None  # the chart it is drawn on; encoder maps are also compared side by side across runs
    compared: bool = False  # shown in the report's comparison of several runs, each on its own scale
    # False where the report shows the same thing in a richer form: the parameter table, the turnable 3-D view.
    in_report: bool = True
    wide: bool = False  # the report shows it across the page's width (a decoder grid: its images must be seen)


def run_figure_list(run, dataset, glyphs: bool = False, color_by=None) -> list[RunFigure]:
    """Every figure the run's geometry and data allow, in the order a reader meets them, each titled with the run,
    its preset and data set (a figure pasted into a slide still says where it came from); the maps' points
    coloured by ``color_by`` (``viz.colour``: the data's true angles where known, else the class)."""
    lat = run.latents()
    model, geometry = run.model, run.model.geometry
    z, y = lat["z_test"], lat["y_test"]
    colour = resolve(color_by, dataset, len(z))
    shape = plots.image_shape(dataset, model.n_features)
    x_test = dataset.flat("test")[0]
    figs = [RunFigure("loss_curves", "loss-curves", "train and test loss per epoch",
                      lambda: plots.loss_curves(run.history)),
            RunFigure("parameters", "parameters", "parameters of each layer",
                      lambda: plots.parameter_figure(model, title=run.config.preset or "custom"), in_report=False)]
    if shape is not None:
        figs.append(RunFigure("reconstructions", "reconstructions", "one test image per class and its reconstruction",
                              lambda: plots.reconstructions(model, x_test, y, shape)))

    @functools.cache
    def kept():  # what the map keeps of each point's neighbourhood, on the fixed test subset; shared by the charts
        idx = trust_subset(len(z))
        return idx, neighbourhood_preservation(x_test[idx], z[idx])

    spread, label = posterior_spread(model, x_test)  # None for a point mass
    for chart in geometry.charts():
        figs.append(RunFigure(f"encoder_map_{chart.name}", "maps", f"every test point ({len(z):,}) on the "
                              f"{chart.name} chart" + _by(colour),
                              functools.partial(plots.encoder_map, chart, z, y, glyphs=glyphs, classes=dataset.classes,
                                                colour=colour),
                              chart=chart.name, compared=True))
        figs.append(RunFigure(f"preservation_map_{chart.name}", "maps",
                              f"the share of each point's 5 nearest test images that stay its 5 nearest on the map "
                              f"({len(trust_subset(len(z))):,} test points)",
                              functools.partial(lambda c: plots.preservation_map(c, z[kept()[0]], kept()[1]), chart),
                              chart=chart.name))
        if shape is not None:
            figs.append(RunFigure(f"decoder_grid_{chart.name}", "maps", "decoded from a regular grid over the "
                                  + ("whole chart" if chart.extent is not None else "data's 0.5-99.5% range"),
                                  functools.partial(plots.decoder_grid, model, chart, shape, z_data=z),
                                  chart=chart.name, wide=True))
        if spread is not None:
            figs.append(RunFigure(f"posterior_spread_{chart.name}", "maps",
                                  f"the posterior's spread ({label}) of each test point on the {chart.name} chart",
                                  functools.partial(spread_map, chart, z, spread, label), chart=chart.name))
    if model.map is not None:  # a free layout: how decoder and placement invert each other, over the whole map
        for chart in geometry.charts():
            figs.append(RunFigure(f"round_trip_{chart.name}", "maps",
                                  f"a {ROUND_TRIP_GRID} x {ROUND_TRIP_GRID} grid over the {chart.name} chart (dots), "
                                  "decoded and placed again (crosses): the round trip of metrics.json",
                                  functools.partial(_round_trip_map, model, chart, lat["z_train"]),
                                  chart=chart.name))
    embedding = geometry.embedding_3d()
    if embedding is not None:
        points = embedding.to_3d(torch.as_tensor(z)).numpy()
        if not geometry.charts():  # no chart to map it on: its first two principal axes, named as such
            figs.append(RunFigure("encoder_map_pca", "maps", "the 3-D latents on their first two principal axes",
                                  lambda: plots.pca_map(points, y, classes=dataset.classes, glyphs=glyphs,
                                                        colour=colour)))
        figs.append(RunFigure("latent_3d", "maps", f"the {embedding.title}",
                              lambda: plots.scatter_3d(points, y, embedding, classes=dataset.classes, colour=colour),
                              in_report=False))
    # Prior samples and traversals: where the geometry offers them.
    if shape is not None and geometry.has_prior:
        figs.append(RunFigure("prior_samples", "maps", "images decoded from samples of the prior",
                              lambda: prior_samples(model, shape)))
    if shape is not None and geometry.traversal(2) is not None:
        figs.append(RunFigure("traversals", "maps", "decoded along each latent direction through the prior's centre",
                              lambda: traversals(model, shape)))
    title = figure_title(run, dataset)
    return [dataclasses.replace(f, draw=functools.partial(_titled, f.draw, title)) for f in figs]


def _round_trip_map(model, chart, z_train):
    points, back = (t.cpu().numpy() for t in round_trip_points(model, chart))
    share = np.median(np.linalg.norm(back - points, axis=1)) / diameter(model.map.coords)
    return trails_map(chart, "round trip", [0, 1], points, back[None], np.zeros(len(points), np.int64), z_all=z_train,
                      title=f"round trip: median distance back {share:.1%} of the map's diameter\n"
                            f"({len(points)} grid points decoded and placed again, {chart.name})")


def figure_title(run, dataset) -> str:
    """The line above every figure of a run: its folder, preset and data set."""
    return f"{run.path.name}  |  preset {run.config.preset or 'custom'}  |  data {dataset.name}"


def titled(fig, title: str):
    """``fig`` with ``title`` (figure_title's line) above it, small and grey, as every figure of a run has."""
    fig.suptitle(plots.mpl_text(title), fontsize=8, color="0.35")
    return fig


def _titled(draw: Callable, title: str):
    return titled(draw(), title)


def _by(colour) -> str:
    return "" if colour is None else f", coloured by {colour.label}"


def plot_run(run, dataset, glyphs: bool = False, color_by=None) -> list[Path]:
    """Draw every figure of ``run`` into ``run.path / "figures"``; returns the files written."""
    folder = no_links_below(run.path, run.path / "figures")
    written = [plots.save_png(f.draw(), folder / f"{f.name}.png")
               for f in run_figure_list(run, dataset, glyphs, color_by)]
    embedding = run.model.geometry.embedding_3d()
    if embedding is not None:  # the turnable 3-D view, as a page of its own
        lat = run.latents()
        points = embedding.to_3d(torch.as_tensor(lat["z_test"])).numpy()
        colour = resolve(color_by, dataset, len(points))
        page = plots.globe_html(points, lat["y_test"], embedding, dataset.classes, colour)
        written.append(atomic_write_text(folder / "latent_3d.html", page))
    return written


def run_figures(run, dataset, glyphs: bool = False, color_by=None) -> dict:
    """Every figure of ``run`` as matplotlib figures, by file name without ".png" (``encoder_map_plane``, ...):
    what ``plot_run`` writes, or what a notebook shows (``Run.figures()``)."""
    return {f.name: f.draw() for f in run_figure_list(run, dataset, glyphs=glyphs, color_by=color_by)}


def figure_html(png: bytes, caption: str, wide: bool = False) -> str:
    """A PNG inlined as an HTML figure with its caption (the report's, and its probe sections'); ``wide`` spans
    the page."""
    data = base64.b64encode(png).decode("ascii")
    return f"<figure{' class=wide' if wide else ''}><img alt='{html.escape(caption)}' " \
           f"src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}</figcaption></figure>"
