"""The report: one self-contained HTML file per run or group of runs, readable offline and fit to mail.

Every figure is drawn afresh from the run folder (weights, latents, history) and inlined as a PNG; the globes are
plotly figures with plotly.js inlined once (only when a run has 3-D latents). Several runs get a side-by-side table first, and their maps share
their scales.
"""

from __future__ import annotations

import datetime
import html
import itertools
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from .._guard import GENERATOR
from .._guard import check_out
from .._io import atomic_write_text
from ..atlas_map import placement_said
from ..metrics import METRIC, METRICS
from ..config import RunConfig
from ..errors import LatentAtlasError
from ..model import parameter_table
from ..runs import Run, load_run
from .explorer import CSP
from .figures import figure_html
from .report_probe import probe_comparison, probe_section

SECTIONS = ("settings", "maps", "metrics", "loss-curves", "reconstructions", "parameters", "configuration")

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 12px 20px 40px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 19px; border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 34px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 10px; }
th, td { border: 1px solid #ddd; padding: 3px 9px; text-align: left; } td.num { text-align: right; }
th { background: #f4f4f6; }
img { max-width: 100%; height: auto; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.row figure { margin: 0; flex: 1 1 340px; max-width: 560px; }
figure.wide { margin: 8px 0; } figure.wide img { width: 100%; }
details summary { cursor: pointer; font-weight: 600; margin: 14px 0 6px; }
figcaption { font-size: 12px; color: #555; }
.meta { color: #666; font-size: 12px; }
nav a { margin-right: 12px; }
"""


def write_report(runs, out: str | Path, overwrite: bool = False, color_by=None) -> Path:
    """Write the report of ``runs`` (run folders or loaded :class:`Run` objects) to ``out``, their maps coloured by
    ``color_by`` (``viz.colour``); returns the path. ``out`` may replace only a file latentatlas wrote, unless
    ``overwrite``."""
    check_out(out, overwrite)
    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    return atomic_write_text(out, report_html(loaded, color_by), overwrite)


def report_html(runs: list[Run], color_by=None) -> str:
    from plotly.offline import get_plotlyjs

    datasets: dict[tuple, object] = {}
    for run in runs:
        key = run.config.data_spec
        if key not in datasets:
            datasets[key] = run.dataset()
    from .figures import run_figure_list
    from .plots import png_bytes

    lats = [r.latents() for r in runs]
    # Each run's figures, from the one list that `plot` writes too, drawn once: an encoder map on its own scale (a
    # plane's is arbitrary: on a shared one a small map would shrink to a dot beside an atlas map) is shown in the
    # comparison and in its run's section.
    figures = [[(f, png_bytes(f.draw())) for f in run_figure_list(r, datasets[r.config.data_spec], color_by=color_by)
                if f.in_report] for r in runs]
    ids = _unique_ids(runs)
    body = [f"<h1>latentatlas report</h1><p class='meta'>{len(runs)} run(s); written "
            f"{datetime.datetime.now().isoformat(timespec='seconds')} by latentatlas {__version__}</p>",
            "<nav>" + "".join(f"<a href='#{i}'>{html.escape(r.path.name)}</a>" for i, r in zip(ids, runs)) + "</nav>"]
    if len(runs) > 1:
        body.append(_comparison(runs, ids, figures))
    for run, rid, lat, figs in zip(runs, ids, lats, figures):
        body.append(_run_section(run, rid, datasets[run.config.data_spec], lat, figs, color_by))
    # plotly.js (about 5 MB) only where a 3-D view needs it
    plotly = f"<script>{get_plotlyjs()}</script>" if any(r.model.geometry.embedding_3d() for r in runs) else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{GENERATOR}"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            f"<title>latentatlas report: {html.escape(', '.join(r.path.name for r in runs))}</title>"
            f"<style>{STYLE}</style>{plotly}</head>"
            f"<body>{''.join(body)}</body></html>")


def _comparison(runs: list[Run], ids: list[str], figures: list[list]) -> str:
    shown = [m for m in METRICS if any(m.key in r.metrics for r in runs)]
    head = "<tr><th>run</th>" + "".join(f"<th>{m.label}</th>" for m in shown) + "</tr>"
    rows = "".join(f"<tr><td><a href='#{i}'>{html.escape(r.path.name)}</a></td>"
                   + "".join(f"<td class='num'>{_fmt(m.key, r.metrics.get(m.key))}</td>" for m in shown) + "</tr>"
                   for r, i in zip(runs, ids))
    configs = [r.config.to_dict() for r in runs]
    differ = [k for k in configs[0] if len({repr(c.get(k)) for c in configs}) > 1]
    diff = ("<h3>Settings that differ</h3><table><tr><th>run</th>" + "".join(f"<th>{k}</th>" for k in differ)
            + "</tr>" + "".join(f"<tr><td>{html.escape(r.path.name)}</td>"
                                + "".join(f"<td>{html.escape(str(c.get(k)))}</td>" for k in differ) + "</tr>"
                                for r, c in zip(runs, configs)) + "</table>") if differ else ""
    rows_of_maps = []
    maps = [{f.chart: png for f, png in figs if f.compared} for figs in figures]
    for name in dict.fromkeys(name for pngs in maps for name in pngs):  # chart names, in order of appearance
        figs = [figure_html(pngs[name], f"{run.path.name}, {name} chart") for run, pngs in zip(runs, maps)
                if name in pngs]
        rows_of_maps.append(f"<h3>Encoder maps, each on its own scale: {name} chart</h3>"
                            f"<div class='row'>{''.join(figs)}</div>")
    rows_of_maps.append(probe_comparison(runs))
    return (f"<section id='comparison'><h2>Comparison</h2><table>{head}{rows}</table>{diff}"
            f"{''.join(rows_of_maps)}</section>")


def _run_section(run: Run, rid: str, dataset, lat: dict, figures: list, color_by=None) -> str:
    """A run's section: the settings it changed from its preset's, its maps (decoder grids across the page), then
    metrics, curves, reconstructions, parameters, and every setting folded away at the end."""
    from .colour import resolve
    from .plots import globe_figure

    model = run.model
    cfg = run.config.to_dict()
    changed = _changed_settings(run.config)
    said = placement_said(model)  # how a map's run placed its test images
    parts = [f"<section class='run' id='{rid}'><h2>{html.escape(run.path.name)}</h2>"
             f"<p class='meta'>{html.escape(str(run.path))}: preset {html.escape(run.config.preset or 'custom')}, "
             f"data {html.escape(dataset.name)}" + (f"; {html.escape(said)}" if said else "") + "</p>"]
    parts.append(f"<section id='{rid}-settings'><h3>Settings changed from the preset's</h3>"
                 + ("<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td>"
                                        f"<td class='meta'>preset: {html.escape(str(d))}</td></tr>"
                                        for k, (v, d) in changed.items()) + "</table>" if changed
                    else "<p class='meta'>none: the preset as it is</p>") + "</section>")
    shown = {section: [(f, png) for f, png in figures if f.section == section] for section in SECTIONS}
    maps = []
    for chart, group in itertools.groupby(shown["maps"], key=lambda fp: fp[0].chart):  # a row per chart, in order
        group = list(group)
        figs = "".join(figure_html(png, f.caption) for f, png in group if not f.wide)
        wide = "".join(figure_html(png, f.caption, wide=True) for f, png in group if f.wide)
        maps.append((f"<h3>{chart} chart</h3>" if chart else "") + f"<div class='row'>{figs}</div>{wide}")
    embedding = model.geometry.embedding_3d()
    if embedding is not None:
        points = embedding.to_3d(torch.as_tensor(lat["z_test"])).numpy()
        globe = globe_figure(points, lat["y_test"], embedding, dataset.classes,
                             resolve(color_by, dataset, len(points)))
        maps.append(f"<h3>Interactive {embedding.title} (drag to turn)</h3>"
                    + globe.to_html(include_plotlyjs=False, full_html=False, div_id=f"{rid}-globe",
                                    default_height=560, config={"displaylogo": False}))
    if maps:
        parts.append(f"<section id='{rid}-maps'><h3>Latent maps</h3>{''.join(maps)}</section>")
    parts.append(f"<section id='{rid}-metrics'><h3>Metrics</h3><table>"
                 + "".join(f"<tr><th>{html.escape(METRIC[k].label if k in METRIC else k)}</th>"
                           f"<td class='num'>{_fmt(k, v)}</td></tr>"
                           for k, v in run.metrics.items()) + "</table></section>")
    for section, title in (("loss-curves", "Loss curves"), ("reconstructions", "Reconstructions")):
        if shown[section]:
            parts.append(f"<section id='{rid}-{section}'><h3>{title}</h3>"
                         + "".join(figure_html(png, f.caption) for f, png in shown[section]) + "</section>")
    rows = parameter_table(model)
    parts.append(f"<section id='{rid}-parameters'><h3>Parameters</h3><table><tr><th>module</th><th>layer</th>"
                 "<th>parameters</th></tr>"
                 + "".join(f"<tr><td>{n}</td><td>{html.escape(layer)}</td><td class='num'>{c:,}</td></tr>"
                           for n, layer, c in rows)
                 + f"<tr><th></th><th>total</th><th class='num'>{sum(c for *_, c in rows):,}</th></tr></table></section>")
    parts.append(f"<section id='{rid}-configuration'><details><summary>Every setting ({len(cfg)})</summary><table>"
                 + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in cfg.items())
                 + "</table></details></section>")
    parts.append(probe_section(run, rid))
    parts.append("</section>")
    return "".join(parts)


def _changed_settings(config: RunConfig) -> dict[str, tuple]:
    """{setting: (the run's value, the default)} for every setting the run gives otherwise than its preset (or,
    without one, the settings' own defaults) would: what a reader needs to know about it beyond the preset's name."""
    base = RunConfig(preset=config.preset, data=config.data)
    try:
        base = base.resolved()
    except LatentAtlasError:  # no preset: the architecture has no default to differ from
        pass
    mine, theirs = config.to_dict(), base.to_dict()
    return {k: (v, theirs[k]) for k, v in mine.items() if k != "extra" and v != theirs.get(k)}


def _fmt(key: str, v) -> str:
    """A metric as the metrics table formats it; a value of another kind as it is."""
    if v is None:
        return "n/a"
    if key in METRIC and isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
        return html.escape(METRIC[key].format(v))
    return html.escape(str(v))


def _unique_ids(runs: list[Run]) -> list[str]:
    ids, seen = [], {}
    for r in runs:
        base = "run-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in r.path.name)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids
