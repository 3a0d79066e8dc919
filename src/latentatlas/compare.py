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
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness

from ._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ._table import text_table
from .config import RunConfig
from .data import Dataset, load_dataset
from .errors import LatentAtlasError
from .metrics import TRUST_K, knn_accuracy, trust_subset
from .nets import PRESETS
from .runs import CONFIG, MANIFEST, Run, load_run, read_config, resolve_runtime, train_run
from .train import as_tensor, to_unit_float

METRICS = ("n_params", "bce_test", "mse_test", "knn1", "knn5", "trustworthiness", "train_seconds")
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
    dataset = load_dataset(data)
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
        datasets = {(r.config.data, r.config.image_size): r for r in runs}  # one run per data set, to load it
        for (name, size), run in datasets.items():
            suffix = "" if len(datasets) == 1 else f" data={name}" + ("" if size is None else f" image_size={size}")
            dataset = run.dataset()
            for k in PCA_COMPONENTS:
                _collect(results, f"pca-{k}{suffix}", pca_metrics(dataset, k))
    return results, runs


def pca_metrics(dataset: Dataset, n_components: int) -> dict:
    """PCA as an autoencoder: encode = project, decode = inverse_transform (clipped to pixel range for BCE)."""
    x_train, y_train = dataset.flat("train")
    x_test, y_test = dataset.flat("test")
    xtr = to_unit_float(as_tensor(x_train)).numpy()
    xte = to_unit_float(as_tensor(x_test)).numpy()
    pca = PCA(n_components=n_components, svd_solver="full").fit(xtr)
    z_train, z_test = pca.transform(xtr), pca.transform(xte)
    recon = pca.inverse_transform(z_test)
    p = np.clip(recon, 1e-7, 1 - 1e-7)  # BCE needs probabilities; the clip is the only change to PCA's output
    idx = trust_subset(len(xte))
    return {
        "n_params": int(pca.components_.size + pca.mean_.size),
        "bce_test": float(-np.mean(xte * np.log(p) + (1 - xte) * np.log(1 - p))),
        "mse_test": float(np.mean((recon - xte) ** 2)),
        "knn1": knn_accuracy(z_train, y_train, z_test, y_test, 1),
        "knn5": knn_accuracy(z_train, y_train, z_test, y_test, 5),
        "trustworthiness": float(trustworthiness(xte[idx], z_test[idx], n_neighbors=TRUST_K)),
        "train_seconds": None,
    }


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
    cols = [("model", None), ("n", None), ("parameters", "n_params"), ("test BCE", "bce_test"), ("test MSE", "mse_test"),
            ("1-NN", "knn1"), ("5-NN", "knn5"), ("trust", "trustworthiness"), ("train s", "train_seconds")]
    cells = []
    for r in rows:
        line = [r["model"], str(r["n"])]
        for _, m in cols[2:]:
            mean, sd = r[f"{m}_mean"], r[f"{m}_sd"]
            if mean is None:
                line.append("-")
            elif m == "n_params":
                line.append(f"{mean:,.0f}")
            else:
                digits = 1 if m == "train_seconds" else 4 if m in ("bce_test", "mse_test") else 3
                line.append(f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}")
        cells.append(line)
    return text_table([h for h, _ in cols], cells)


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

    from .plots import CMAP, png_bytes, shared_map_limits

    fig = plt.figure(figsize=(4.2 * max(1, len(runs)), 4))
    limits = shared_map_limits((r.model.geometry, r.latents()["z_test"]) for r in runs)
    for i, run in enumerate(runs):
        lat = run.latents()
        colours = [CMAP(int(v) % 10) for v in lat["y_test"]]
        charts = run.model.geometry.charts()
        if charts:
            chart = charts[0]
            ax = fig.add_subplot(1, len(runs), i + 1)
            uv = chart.to_map(torch.as_tensor(lat["z_test"])).numpy()
            ax.scatter(uv[:, 0], uv[:, 1], s=2, c=colours, linewidths=0, alpha=0.7)
            ax.set(title=f"{run.config.preset} ({chart.name})", xlabel=chart.labels[0], ylabel=chart.labels[1])
            (x0, x1), (y0, y1) = limits[chart.name]
            ax.set(xlim=(x0, x1), ylim=(y1, y0) if chart.y_down else (y0, y1))
        elif run.model.geometry.dim == 3:
            ax = fig.add_subplot(1, len(runs), i + 1, projection="3d")
            z = lat["z_test"]
            ax.scatter(z[:, 0], z[:, 1], z[:, 2], s=1, c=colours, linewidths=0, alpha=0.6)
            ax.set(title=f"{run.config.preset} (3-D)", xlabel="$z_1$", ylabel="$z_2$", zlabel="$z_3$")
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
        raise LatentAtlasError(f"{folder} exists and is not a run folder: choose another --out")
    saved = read_config(folder)
    differ = [f"{n} {getattr(saved, n)!r} there, {getattr(cfg, n)!r} now" for n in (*SETTINGS, "seed")
              if getattr(saved, n) != getattr(cfg, n)]
    if differ:
        raise LatentAtlasError(f"{folder} holds a run with other settings ({'; '.join(differ)}): choose another --out")


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
