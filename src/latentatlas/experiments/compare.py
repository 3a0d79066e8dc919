"""Honest comparisons: several models x several seeds, mean and spread, with PCA as a baseline.

Every model is evaluated by the same protocol (latentatlas.metrics): test BCE and MSE, k-NN accuracy of test
latents against train latents, trustworthiness on the fixed test subset.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from .._table import text_table
from ..config import RunConfig
from ..data import Dataset
from ..errors import LatentAtlasError, option
from ..geometries import get_geometry
from ..metrics import METRICS as ALL_METRICS
from ..metrics import evaluate
from ..model import Output
from ..nets import PRESETS
from ..runs import CONFIG, MANIFEST, Run, load_run, not_a_run_folder, read_config, resolve_runtime, train_run
from ..train import as_tensor, to_unit_float

COLUMNS = tuple(m for m in ALL_METRICS if m.compared)
METRICS = tuple(m.key for m in COLUMNS)
DEFAULT_PRESETS = ("deep-2d", "deep-3d", "deep-3d-narrow", "deep-s2")
PCA_COMPONENTS = (2, 3)
SETTINGS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.compare and f.name != "seed")
ARCHITECTURE = ("preset", "hidden_sizes", "geometry", "latent_dim")  # what a preset's name already says


def compare(presets=DEFAULT_PRESETS, seeds: int = 3, data: str = "mnist-5k", out: str | Path = "runs/compare",
            epochs: int = 10, pca: bool = True, progress: bool | None = None, echo=print) -> tuple[dict, list[Run]]:
    """Train what is missing under ``out/<preset>/seed<k>``; returns ({model: {metric: [values]}}, seed-0 runs).

    Every setting and every run folder already in ``out`` is checked before anything is trained. A folder is reused
    only if its config.json equals the config this call would train, every setting included (a finished run is
    loaded, an unfinished one resumed), so an interrupted comparison continues where it stopped; a folder that holds
    anything else is refused, never trained over.
    """
    presets = list(presets)
    if not presets:
        raise LatentAtlasError(f"no presets given: choose one or more of {', '.join(PRESETS)}")
    twice = [p for p in presets if presets.count(p) > 1]
    if twice:
        raise LatentAtlasError(f"preset {twice[0]!r} given twice: give each preset once")
    if not isinstance(seeds, int) or seeds < 1:
        raise LatentAtlasError(f"seeds={seeds!r} is out of range: it must be an integer >= 1")
    out = Path(out)
    jobs = []
    for preset in presets:
        for seed in range(seeds):
            cfg = resolve_runtime(RunConfig(preset=preset, data=data, epochs=epochs, seed=seed))
            folder = out / preset / f"seed{seed}"
            _check_folder(folder, cfg)
            jobs.append((cfg, folder))
    dataset = jobs[0][0].data_spec.load()
    results: dict[str, dict[str, list]] = {}
    first_runs = []
    for cfg, folder in jobs:
        if (folder / MANIFEST).is_file():
            run = load_run(folder)
        else:
            echo(f"training {cfg.preset}, seed {cfg.seed} ...")
            run = train_run(cfg, folder, resume=True, dataset=dataset, progress=progress)
        _collect(results, cfg.preset, run.metrics)
        if cfg.seed == 0:
            first_runs.append(run)
    if pca:
        for k in PCA_COMPONENTS:
            _collect(results, f"pca-{k}", pca_metrics(dataset, k))
    return results, first_runs


def compare_runs(paths, pca: bool = True) -> tuple[dict, list[Run]]:
    """Summarise existing run folders; runs whose configs differ only in the seed are grouped as seeds of one model.

    Runs that differ in any other setting (data, epochs, ...) are separate models, labelled by their preset plus the
    settings that tell them apart (``deep-2d data=digits``). PCA baselines are computed once per data set, labelled
    with the data set when the runs use more than one.
    """
    runs = [load_run(p) for p in paths]
    groups: dict[RunConfig, list[Run]] = {}  # config with seed 0 -> its runs (RunConfig equality ignores ``extra``)
    for run in runs:
        group = groups.setdefault(dataclasses.replace(run.config, seed=0), [])
        same = [r for r in group if r.config.seed == run.config.seed]
        if same:
            raise LatentAtlasError(f"{same[0].path} and {run.path} have the same settings and seed: give each run once")
        group.append(run)
    results: dict[str, dict[str, list]] = {}
    bases = [g[0].config.preset or g[0].path.name for g in groups.values()]
    for label, group in zip(_labels(bases, list(groups)), groups.values()):
        for run in group:
            _collect(results, label, run.metrics)
    if pca:
        datasets = {r.config.data_spec: r for r in runs}  # one run per data set, to load it
        for spec, run in datasets.items():
            suffix = "" if len(datasets) == 1 else f" data={spec.source}" + (
                "" if spec.image_size is None else f" image_size={spec.image_size}") + "".join(
                f" {t}" for t in spec.transforms)
            dataset = run.dataset()
            for k in PCA_COMPONENTS:
                _collect(results, f"pca-{k}{suffix}", pca_metrics(dataset, k))
    return results, runs


class PCAAutoencoder(nn.Module):
    """PCA written as an autoencoder, so that ``metrics.evaluate`` scores it by exactly the models' protocol.

    encode = project onto the components; the reconstruction is ``inverse_transform`` clipped to (0, 1), given as
    logits (BCE needs probabilities; the clip is the only change to PCA's output). Its parameters are the
    components and the mean.
    """

    def __init__(self, components: np.ndarray, mean: np.ndarray):
        super().__init__()
        self.components = nn.Parameter(torch.as_tensor(components, dtype=torch.float32))  # (k, D)
        self.mean = nn.Parameter(torch.as_tensor(mean, dtype=torch.float32))  # (D,)
        self.geometry = get_geometry("euclidean", len(components))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.components.T

    def forward(self, x: torch.Tensor) -> Output:
        z = self.encode(x)
        p = (z @ self.components + self.mean).clamp(1e-7, 1 - 1e-7)
        return Output(torch.logit(p), z, None)


def pca_metrics(dataset: Dataset, n_components: int) -> dict:
    """PCA with ``n_components`` fitted on the training images, scored like every model (``metrics.evaluate``)."""
    from sklearn.decomposition import PCA

    xtr = to_unit_float(as_tensor(dataset.flat("train")[0])).numpy()
    pca = PCA(n_components=n_components, svd_solver="full").fit(xtr)
    return {**evaluate(PCAAutoencoder(pca.components_, pca.mean_), dataset), "train_seconds": None}


def summary(results: dict) -> list[dict]:
    """One row per model: n (seeds) and mean/sd of every metric (sd over seeds, ddof=1; None for one seed)."""
    rows = []
    for model, metrics in results.items():
        row = {"model": model, "n": len(metrics["bce_test"])}
        for m in METRICS:
            values = [v for v in metrics[m] if v is not None]
            row[f"{m}_mean"] = float(np.mean(values)) if values else None
            row[f"{m}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None  # no spread over one value
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """Mean ± s.d. of each metric, as the metrics table formats it; a property (the parameter count) has no spread."""
    cells = []
    for r in rows:
        line = [r["model"], str(r["n"])]
        for m in COLUMNS:
            mean, sd = r[f"{m.key}_mean"], r[f"{m.key}_sd"]
            spread = sd is not None and m.better is not None
            line.append(m.format(mean) + (f" ± {m.format(sd)}" if spread and mean is not None else ""))
        cells.append(line)
    return text_table(["model", "n", *(m.header for m in COLUMNS)], cells)


def write_outputs(results: dict, out: str | Path) -> list[Path]:
    """compare.json (every value), compare.csv (the summary) in ``out``; a missing value (the s.d. of one seed,
    PCA's training time) is null in the JSON and an empty cell in the CSV."""
    out = Path(out)
    rows = summary(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return [atomic_write_json(out / "compare.json", {"summary": rows, "values": results}),
            atomic_write_text(out / "compare.csv", buf.getvalue())]


def encoder_maps_figure(runs: list[Run], out: str | Path) -> Path:
    """Each run's encoder map side by side: its first chart (maps of the same chart share their axes), or a 3-D
    scatter where the geometry has no chart (R^3)."""
    import matplotlib.pyplot as plt
    import torch

    from ..viz.plots import png_bytes, shared_map_limits
    from ..viz.style import class_colour

    fig = plt.figure(figsize=(4.2 * max(1, len(runs)), 4))
    limits = shared_map_limits((r.model.geometry, r.latents()["z_test"]) for r in runs)
    for i, run in enumerate(runs):
        lat = run.latents()
        colours = [class_colour(v) for v in lat["y_test"]]
        charts = run.model.geometry.charts()
        if charts:
            chart = charts[0]
            ax = fig.add_subplot(1, len(runs), i + 1)
            uv = chart.to_map(torch.as_tensor(lat["z_test"])).numpy()
            ax.scatter(uv[:, 0], uv[:, 1], s=2, c=colours, linewidths=0, alpha=0.7)
            ax.set(title=f"{run.config.preset} ({chart.name})", xlabel=chart.labels[0], ylabel=chart.labels[1])
            (x0, x1), (y0, y1) = limits[chart.name]
            ax.set(xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1))
        elif (embedding := run.model.geometry.embedding_3d()) is not None:
            ax = fig.add_subplot(1, len(runs), i + 1, projection="3d")
            p = embedding.to_3d(torch.as_tensor(lat["z_test"])).numpy()
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=1, c=colours, linewidths=0, alpha=0.6)
            x, y, z = embedding.axis_labels
            ax.set(title=f"{run.config.preset} (3-D)", xlabel=x, ylabel=y, zlabel=z)
    fig.tight_layout()
    return atomic_write_bytes(Path(out) / "encoder_maps.png", png_bytes(fig, dpi=100))


def _collect(results: dict, model: str, metrics: dict) -> None:
    entry = results.setdefault(model, {m: [] for m in METRICS})
    for m in METRICS:
        entry[m].append(metrics.get(m))


def _check_folder(folder: Path, cfg: RunConfig) -> None:
    """Refuse a run folder that holds anything but a run, finished or not, of exactly ``cfg``."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return
    if not (folder / CONFIG).is_file():
        raise not_a_run_folder(folder, "use")
    saved = read_config(folder)
    differ = [f"{n} {getattr(saved, n)!r} there, {getattr(cfg, n)!r} now" for n in (*SETTINGS, "seed")
              if getattr(saved, n) != getattr(cfg, n)]
    if differ:
        raise LatentAtlasError(f"{folder} holds a run with other settings ({'; '.join(differ)}): choose another "
                               f"{option('out')}")


def _labels(bases: list[str], configs: list[RunConfig]) -> list[str]:
    """Each model's name plus the settings that tell it apart: those that vary over all models (the architecture
    aside, which the name says), and any that vary among models of the same name."""

    def varying(cfgs) -> list[str]:
        return [n for n in SETTINGS if len({repr(getattr(c, n)) for c in cfgs}) > 1]

    everywhere = [n for n in varying(configs) if n not in ARCHITECTURE]
    labels = []
    for base, cfg in zip(bases, configs):
        namesakes = varying([c for b, c in zip(bases, configs) if b == base])
        shown = [n for n in SETTINGS if n in everywhere or n in namesakes]
        labels.append(" ".join([base, *(f"{n}={getattr(cfg, n)}" for n in shown)]))
    return labels
