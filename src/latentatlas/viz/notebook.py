"""What a notebook shows (Jupyter, VS Code, Colab): a run or a fitted estimator as a small HTML card (settings,
metrics, a thumbnail of its encoder map) and the live explorer inline.

The explorer goes into the notebook as an ``<iframe srcdoc=...>`` holding the whole page: no server, no file, no
network, and its scripts and styles cannot touch the notebook's (the frame is sandboxed to scripts only).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from .._io import atomic_write_text

STYLE = ("font-family: system-ui, sans-serif; font-size: 13px; display: flex; gap: 18px; align-items: flex-start; "
         "flex-wrap: wrap; border: 1px solid #ddd; border-radius: 6px; padding: 10px; max-width: 980px")


def summary_html(title: str, subtitle: str, settings: dict, metrics: dict, thumbnail: bytes | None) -> str:
    """The card: a title, the settings and metrics as two small tables, the encoder map's thumbnail (PNG)."""
    from ..metrics import METRIC

    def table(caption: str, rows: dict, numbers: bool) -> str:
        cells = "".join(f"<tr><th style='text-align:left;padding-right:10px;font-weight:500'>{html.escape(k)}</th>"
                        f"<td style='text-align:{'right' if numbers else 'left'}'>{html.escape(v)}</td></tr>"
                        for k, v in rows.items())
        return (f"<table style='border-collapse:collapse'><caption style='text-align:left;font-weight:600'>"
                f"{html.escape(caption)}</caption>{cells}</table>")

    shown = {}
    for key, value in metrics.items():
        if key in METRIC and value is not None:
            shown[METRIC[key].label] = METRIC[key].format(value)
        elif value is not None:
            shown[key] = _format(value)
    img = "" if thumbnail is None else (
        f"<img alt='encoder map' style='width:300px' src='data:image/png;base64,"
        f"{base64.b64encode(thumbnail).decode('ascii')}'>")
    return (f"<div style='{STYLE}'><div><div style='font-size:15px;font-weight:600'>{html.escape(title)}</div>"
            f"<div style='color:#666;margin-bottom:6px'>{html.escape(subtitle)}</div>"
            f"<div style='display:flex;gap:18px;align-items:flex-start'>{table('settings', {k: _format(v) for k, v in settings.items()}, False)}"
            f"{table('metrics', shown, True) if shown else ''}</div></div>{img}</div>")


def thumbnail(geometry, z: np.ndarray, y: np.ndarray | None, classes=None) -> bytes | None:
    """A small PNG of the encoder map: the geometry's first chart, or for 3-D latents without one their first two
    principal axes; None where the latent space has neither."""
    import matplotlib.pyplot as plt
    import torch

    from .plots import draw_classes, map_limits, pca_map, png_bytes

    y = np.zeros(len(z), np.int64) if y is None else np.asarray(y)
    charts = geometry.charts()
    embedding = geometry.embedding_3d()
    if charts:
        chart = charts[0]
        uv = chart.to_map(torch.as_tensor(z)).numpy()
        (x0, x1), (y0, y1) = map_limits(chart, uv)
        wide = chart.extent is not None and (x1 - x0) > 1.5 * (y1 - y0)
        fig, ax = plt.subplots(figsize=(4.4, 2.6) if wide else (4, 3.4), layout="constrained")
        draw_classes(ax, uv, y, classes, glyphs=False)
        ax.set(xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1), title=f"{chart.name} chart")
        ax.set_xlabel(chart.labels[0], fontsize=8)
        ax.set_ylabel(chart.labels[1], fontsize=8)
    elif embedding is not None:
        fig = pca_map(embedding.to_3d(torch.as_tensor(z)).numpy(), y, classes=classes)
        fig.set_size_inches(4, 3.4)
        fig.axes[0].set_title("first two principal axes", fontsize=9)
    else:
        return None
    fig.axes[0].title.set_fontsize(9)
    fig.axes[0].tick_params(labelsize=7)
    return png_bytes(fig, dpi=80)


class ExplorerView:
    """The explorer page, shown inline where a notebook displays this object; ``save(path)`` writes the page.

    Parameters
    ----------
    page : str
        The whole self-contained page (``latentatlas.viz.explorer.explorer_html``).
    height : int
        The frame's height in the notebook, in CSS pixels.
    """

    def __init__(self, page: str, height: int = 1000):
        self.page = page
        self.height = height

    def _repr_html_(self) -> str:
        return (f"<iframe class='latentatlas-explorer' title='latentatlas explorer' sandbox='allow-scripts' "
                f"style='width:100%;height:{int(self.height)}px;border:1px solid #ddd;border-radius:6px' "
                f"srcdoc=\"{html.escape(self.page, quote=True)}\"></iframe>")

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the page to ``path`` (it opens from a file:// URL, offline); returns the path. An existing file is
        replaced only if latentatlas wrote it, or with ``overwrite``."""
        return atomic_write_text(path, self.page, overwrite)

    def __repr__(self) -> str:
        return f"<latentatlas explorer page, {len(self.page):,} characters: display it in a notebook, or .save(path)>"


def _format(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
