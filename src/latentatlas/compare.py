"""Honest comparisons: several models x several seeds, mean and spread, with PCA as a baseline.

Every model is evaluated by the same protocol (latentatlas.metrics): test BCE and MSE, k-NN accuracy of test
latents against train latents, trustworthiness on the fixed test subset.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness

from ._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ._table import text_table
from .config import RunConfig
from .data import Dataset, load_dataset
from .metrics import TRUST_K, knn_accuracy, trust_subset
from .runs import MANIFEST, Run, load_run, train_run
from .train import as_tensor, to_unit_float

METRICS = ("n_params", "bce_test", "mse_test", "knn1", "knn5", "trustworthiness", "train_seconds")
DEFAULT_PRESETS = ("deep-2d", "deep-3d", "deep-3d-narrow", "deep-s2")
PCA_COMPONENTS = (2, 3)


def compare(presets=DEFAULT_PRESETS, seeds: int = 3, data: str = "mnist-5k", out: str | Path = "runs/compare",
            epochs: int = 10, pca: bool = True, progress: bool | None = None, echo=print) -> tuple[dict, list[Run]]:
    """Train what is missing under ``out/<preset>/seed<k>``; returns ({model: {metric: [values]}}, seed-0 runs).

    Finished runs already in ``out`` are reused, so an interrupted comparison continues where it stopped.
    """
    out = Path(out)
    dataset = load_dataset(data)
    results: dict[str, dict[str, list]] = {}
    first_runs = []
    for preset in presets:
        for seed in range(seeds):
            folder = out / preset / f"seed{seed}"
            if (folder / MANIFEST).is_file():
                run = load_run(folder)
            else:
                echo(f"training {preset}, seed {seed} ...")
                cfg = RunConfig(preset=preset, data=data, epochs=epochs, seed=seed)
                run = train_run(cfg, folder, overwrite=folder.exists(), dataset=dataset, progress=progress)
            _collect(results, preset, run.metrics)
            if seed == 0:
                first_runs.append(run)
    if pca:
        for k in PCA_COMPONENTS:
            _collect(results, f"pca-{k}", pca_metrics(dataset, k))
    return results, first_runs


def compare_runs(paths, pca: bool = True) -> tuple[dict, list[Run]]:
    """Summarise existing run folders; runs of the same preset are grouped as seeds of one model."""
    results: dict[str, dict[str, list]] = {}
    runs = [load_run(p) for p in paths]
    for run in runs:
        _collect(results, run.config.preset or run.path.name, run.metrics)
    if pca and runs:
        dataset = runs[0].dataset()
        for k in PCA_COMPONENTS:
            _collect(results, f"pca-{k}", pca_metrics(dataset, k))
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
    """One row per model: n (seeds) and mean/sd of every metric (sd over seeds, ddof=1; 0 for one seed)."""
    rows = []
    for model, metrics in results.items():
        row = {"model": model, "n": len(metrics["bce_test"])}
        for m in METRICS:
            values = [v for v in metrics[m] if v is not None]
            row[f"{m}_mean"] = float(np.mean(values)) if values else None
            row[f"{m}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else (0.0 if values else None)
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
                line.append(f"{mean:.{digits}f} ± {sd:.{digits}f}")
        cells.append(line)
    return text_table([h for h, _ in cols], cells)


def write_outputs(results: dict, out: str | Path) -> list[Path]:
    """compare.json (every value), compare.csv (the summary) in ``out``."""
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
