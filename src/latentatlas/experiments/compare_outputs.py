"""What compare shows and writes: the mean ± s.d. table, compare.json / compare.csv, and encoder_maps.png (each
model's map and the 2-D baselines' maps side by side). Results come from :mod:`latentatlas.experiments.compare`."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from .._table import text_table
from ..errors import LatentAtlasError
from .. import metrics as metrics_table
from ..runs import Run
from .baselines import BaselineMap

OUTPUTS = ("compare.json", "compare.csv", "encoder_maps.png")  # what compare writes into its --out folder


def columns() -> tuple:
    """The metrics compare tabulates, read from ``metrics.METRICS`` when asked (a metric added there is a column)."""
    return tuple(m for m in metrics_table.METRICS if m.compared)


def compared_keys() -> tuple[str, ...]:
    return tuple(m.key for m in columns())


def summary(results: dict) -> list[dict]:
    """One row per model: n (seeds) and mean/sd of every metric (sd over seeds, ddof=1; None for one seed)."""
    rows = []
    for model, metrics in results.items():
        row = {"model": model, "n": len(metrics["bce_test"])}
        for m in compared_keys():
            values = [v for v in metrics[m] if v is not None]
            row[f"{m}_mean"] = float(np.mean(values)) if values else None
            row[f"{m}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None  # no spread over one value
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """Mean ± s.d. of each metric, as the metrics table formats it; a property (the parameter count) has no spread.
    A metric no model has (the KL and log-likelihood of plain autoencoders) is left out, not shown as a column of
    "-" (compare.json and compare.csv keep every column)."""
    shown = [m for m in columns() if any(r[f"{m.key}_mean"] is not None for r in rows)]
    cells = []
    for r in rows:
        line = [r["model"], str(r["n"])]
        for m in shown:
            mean, sd = r[f"{m.key}_mean"], r[f"{m.key}_sd"]
            spread = sd is not None and m.better is not None
            line.append(m.format(mean) + (f" ± {m.format(sd)}" if spread and mean is not None else ""))
        cells.append(line)
    return text_table(["model", "n", *(m.header for m in shown)], cells)


def write_outputs(results: dict, out: str | Path) -> list[Path]:
    """compare.json (every value), compare.csv (the summary) in ``out``; a missing value (the s.d. of one seed, the
    BCE of a baseline without a decoder) is null in the JSON and an empty cell in the CSV."""
    out = Path(out)
    rows = summary(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return [atomic_write_json(out / "compare.json", {"summary": rows, "values": results}),
            atomic_write_text(out / "compare.csv", buf.getvalue())]


def encoder_maps_figure(runs: list[Run], out: str | Path, maps: Sequence[BaselineMap] = ()) -> Path:
    """``out/encoder_maps.png``: :func:`encoder_maps` of ``runs`` and ``maps``."""
    from ..viz.plots import png_bytes

    return atomic_write_bytes(Path(out) / "encoder_maps.png", png_bytes(encoder_maps(runs, maps), dpi=100))


def encoder_maps(runs: list[Run], maps: Sequence[BaselineMap] = ()):
    """Each run's encoder map side by side, with one class legend: its first chart, or where the geometry has no
    chart (R^3) its first two principal axes, labelled as such; then each 2-D baseline's map of the same test images
    (``maps``: PCA, UMAP, t-SNE). Each panel names its seed (the table averages over seeds, the figure shows one)
    and has its own scale: a plane's scale is arbitrary (the decoder takes any), and on a shared one a small map
    would shrink to a dot beside an atlas map. A bounded chart spans its whole extent."""
    import matplotlib.pyplot as plt
    import torch

    from ..viz.plots import map_limits, mpl_text, pca_map
    from ..viz.style import class_colour, class_name

    panels = len(runs) + len(maps)
    cols = max(1, panels) if panels <= 4 else 3
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols + 1.4, 4.2 * rows), layout="constrained", squeeze=False)
    classes, labels = None, set()
    for ax, run in zip(axes.flat, runs):
        lat = run.latents()
        labels.update(int(v) for v in np.unique(lat["y_test"]))
        name = mpl_text(f"{run.config.preset or run.path.name}, seed {run.config.seed}")
        charts = run.model.geometry.charts()
        if charts:
            chart = charts[0]
            uv = chart.to_map(torch.as_tensor(lat["z_test"])).numpy()
            _dots(ax, uv, lat["y_test"])
            (x0, x1), (y0, y1) = map_limits(chart, uv)
            ax.set(title=f"{name}\n{chart.name} chart", xlabel=chart.labels[0], ylabel=chart.labels[1],
                   xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1))
        elif (embedding := run.model.geometry.embedding_3d()) is not None:
            pca_map(embedding.to_3d(torch.as_tensor(lat["z_test"])).numpy(), lat["y_test"], ax=ax)
            for c in ax.collections:
                c.set_sizes([4])
            ax.set_title(f"{name}\nfirst two principal axes of the 3-D latents")
        else:
            ax.set_axis_off()
            ax.set_title(f"{name}\n(no map of a {run.model.geometry.dim}-D latent space)")
    for ax, m in zip(list(axes.flat)[len(runs):], maps):
        labels.update(int(v) for v in np.unique(m.y_test))
        _dots(ax, m.z_test, m.y_test)
        ax.set_aspect("equal", adjustable="datalim")
        seed = "" if m.seed is None else f", seed {m.seed}"
        ax.set_title(f"{m.name}{seed}\n" + ("baseline with a decoder" if m.decodes else "baseline, no decoder"))
    for ax in list(axes.flat)[:panels]:
        ax.title.set_fontsize(9)
        ax.xaxis.label.set_fontsize(8)
        ax.yaxis.label.set_fontsize(8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[panels:]:
        ax.set_axis_off()
    if runs:
        try:
            classes = runs[0].dataset().classes
        except LatentAtlasError:  # in-memory data: the labels' numbers stand for the classes
            classes = None
    handles = [plt.Line2D([], [], ls="", marker="o", ms=6, color=class_colour(k),
                          label=mpl_text(class_name(classes, k))) for k in sorted(labels)]
    fig.legend(handles=handles, loc="outside right center", title="class", fontsize=8, frameon=False)
    fig.suptitle("Encoder maps of the test set (one seed of each model)", fontsize=11)
    return fig


def _dots(ax, uv: np.ndarray, y: np.ndarray) -> None:
    """A map's points, coloured by class (one legend serves every panel)."""
    from ..viz.style import class_colour

    ax.scatter(uv[:, 0], uv[:, 1], s=4, c=[class_colour(v) for v in y], linewidths=0, alpha=0.8)
