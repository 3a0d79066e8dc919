"""What a trained model does with corrupted inputs and with classes it never saw: ``latentatlas probe``.

For each corruption (``data.corruptions``) and level, the test set is corrupted by the data spec's transform of that
name (``noise:sigma=0.3:seed=0``: the same pixels as a run trained or evaluated with it) and the model is scored:
the reconstruction error against the clean image (BCE, MSE), the 5-NN accuracy of the corrupted points' latents
(classifier fit on the clean training latents) and how far the points move in latent space. A run trained with
held-out classes (``holdout:classes=...``) also gets novelty detection: each clean test image's reconstruction
error as a novelty score and its ROC AUC for the unseen classes (for a variational geometry, the negative ELBO
too), and every metric split by seen and unseen classes.

Everything goes to the run folder: ``probe.json`` and ``figures/probe_*.png``; the report shows them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_json
from .._limits import MAX_PROBE_LEVELS
from .._lock import FolderLock
from ..data import Dataset, parse_transform
from ..data.corruptions import CORRUPTIONS, get_corruption
from ..data.spec import held_out
from ..errors import LatentAtlasError
from ..losses import bce
from ..run_folder import write_manifest
from ..runs import Run
from .._tensors import as_tensor, to_unit_float

PROBE = "probe.json"
K = 5  # the k of k-NN accuracy, as metrics.json's knn5
N_TRAILS = 60  # test points whose latent trails the map figures draw
N_GRID = 8  # test images per level in the grid of corrupted inputs and reconstructions


def parse_levels(name: str, text: str | None) -> tuple | None:
    """Levels of corruption ``name`` from ``START:STOP:COUNT`` (evenly spaced, both ends included) or a comma
    list; '' gives none, None the corruption's default for each run's images. Each level is checked against the
    corruption's range; a bad one is refused in one line."""
    corruption = get_corruption(name)
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return ()
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            count = int(count)
            if count < 1:
                raise ValueError
            if count > MAX_PROBE_LEVELS:  # before linspace allocates them: each level is a pass over the test set
                raise LatentAtlasError(f"{name} levels {text!r}: {count:,} levels; at most {MAX_PROBE_LEVELS} are probed")
            levels = np.linspace(float(start), float(stop), count).tolist()
        else:
            levels = [float(v) for v in text.split(",") if v.strip()]
            if len(levels) > MAX_PROBE_LEVELS:
                raise LatentAtlasError(f"{name} levels: {len(levels):,} levels; at most {MAX_PROBE_LEVELS} are probed")
    except LatentAtlasError:
        raise
    except ValueError:
        raise LatentAtlasError(f"{name} levels {text!r}: write START:STOP:COUNT (e.g. {corruption.probe_levels or '0:1:5'})"
                               " or a comma-separated list") from None
    if corruption.kind is int:
        rounded = [round(v) for v in levels]
        if any(abs(r - v) > 1e-9 for r, v in zip(rounded, levels)):
            raise LatentAtlasError(f"{name} levels {text!r} are not whole numbers of pixels: {levels}")
        levels = rounded
    else:
        levels = [round(v, 10) for v in levels]  # 0.1 * 3, as linspace gives it, reads 0.3
    for level in levels:
        corruption.check_level(level)
    return tuple(dict.fromkeys(levels))


def probe_run(run: Run, levels: dict[str, tuple | None], seed: int = 0, dataset: Dataset | None = None,
              figures: bool = True) -> dict:
    """Sweep ``run`` over ``levels`` ({corruption name: levels, or None for the corruption's default for the run's
    images}); write ``probe.json`` (and the figures) into its folder and return what it holds. Every level is checked against the images before any work. The run's lock is
    held throughout (``runs.locked_run`` takes it before loading, as the command does)."""
    with FolderLock(run.path):
        return _probe_run(run, levels, seed, dataset, figures)


def _probe_run(run: Run, levels: dict[str, tuple], seed: int, dataset: Dataset | None, figures: bool) -> dict:
    t0 = time.perf_counter()
    dataset = run.dataset() if dataset is None else dataset
    shape = _image_shape(dataset)
    levels = {name: parse_levels(name, get_corruption(name).default_levels(shape)) if lvls is None else tuple(lvls)
              for name, lvls in levels.items()}
    levels = {name: lvls for name, lvls in levels.items() if len(lvls)}
    for name, lvls in levels.items():
        for level in lvls:
            get_corruption(name).check(level, shape)
    model = run.model.eval()
    lat = run.latents()
    x_test, y_test = dataset.flat("test")
    if len(x_test) != len(lat["z_test"]):
        raise LatentAtlasError(f"{run.path}: its latents do not match its test set: rerun `latentatlas evaluate`")
    unseen = np.array(held_out(run.config.transforms), dtype=np.int64)
    if not levels and not len(unseen):
        raise LatentAtlasError(f"{run.path}: nothing to probe: give levels of a corruption (e.g. noise 0:0.6:7), or "
                               "probe a run trained with held-out classes (holdout:classes=...)")
    seen = ~np.isin(y_test, unseen)
    clean = _score(model, x_test, x_test)
    knn = _knn(lat["z_train"], lat["y_train"])
    scale = _typical_distance(clean["z"])
    picked = _pick(y_test)
    trails, grids = {}, {}
    corruptions = {}
    for name, lvls in levels.items():
        rows, trails[name], grids[name] = [], [], []
        for level in lvls:
            transform = parse_transform(f"{name}:{get_corruption(name).level}={level}:seed={seed}")
            x_in = transform.apply(dataset).x_test.reshape(len(x_test), -1)
            s = _score(model, x_in, x_test)
            shift = np.linalg.norm(s["z"] - clean["z"], axis=1)
            row = {"level": level, "transform": str(transform), "bce": float(s["bce"].mean()),
                   "mse": float(s["mse"].mean()), f"knn{K}": _accuracy(knn, s["z"][seen], y_test[seen]),
                   "shift": float(shift.mean()), "shift_rel": float(shift.mean() / scale)}
            if len(unseen):
                for part, m in (("seen", seen), ("unseen", ~seen)):
                    row.update({f"bce_{part}": float(s["bce"][m].mean()), f"mse_{part}": float(s["mse"][m].mean()),
                                f"shift_{part}": float(shift[m].mean())})
            rows.append(row)
            trails[name].append(s["z"][picked["trails"]])
            grids[name].append((x_in[picked["grid"]], s["recon"][picked["grid"]]))
        corruptions[name] = rows
    result = {"run": run.path.name, "seed": seed, "k": K, "test_images": len(x_test),
              "latent_scale": scale, "corruptions": corruptions,
              "labels": {name: CORRUPTIONS[name].label for name in corruptions},
              "novelty": novelty(clean, y_test, unseen, model.geometry.variational) if len(unseen) else None}
    if figures:
        result["figures"] = [str(p.relative_to(run.path)) for p in _draw(run, dataset, result, clean, lat, picked,
                                                                         trails, grids, shape)]
    result["seconds"] = time.perf_counter() - t0
    atomic_write_json(run.path / PROBE, result)
    write_manifest(run.path)
    return result


def novelty(clean: dict, y: np.ndarray, unseen: np.ndarray, variational: bool) -> dict:
    """ROC AUC of the per-image reconstruction BCE as a score for "a class never seen in training", over all the
    unseen classes and per unseen class (that class against the seen ones); the negative ELBO too for a
    variational geometry."""
    from sklearn.metrics import roc_auc_score, roc_curve

    is_new = np.isin(y, unseen)
    scores = {"bce": clean["bce"]}
    if variational:
        scores["neg_elbo"] = clean["bce"] * clean["n_features"] + clean["kl"]  # nats per image
    out = {"classes": unseen.tolist(), "score": "per-image reconstruction BCE", "seen": int((~is_new).sum()),
           "unseen": int(is_new.sum())}
    for key, score in scores.items():
        suffix = "" if key == "bce" else f"_{key}"
        out[f"roc_auc{suffix}"] = float(roc_auc_score(is_new, score))
        out[f"roc_auc_per_class{suffix}"] = {
            str(c): float(roc_auc_score(y[(~is_new) | (y == c)] == c, score[(~is_new) | (y == c)])) for c in unseen}
    fpr, tpr, _ = roc_curve(is_new, clean["bce"])
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).round().astype(int))  # enough to draw
    out["roc"] = {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()}
    return out


@torch.inference_mode()
def _score(model, x_in, x_target, batch_size: int = 4096) -> dict:
    """Per image: BCE and MSE of the reconstruction of ``x_in`` against ``x_target`` (means over pixels), the KL
    of its posterior, its latent point (the mode) and its reconstruction."""
    device = next(model.parameters()).device
    x_in, x_target = as_tensor(x_in).reshape(len(x_in), -1), as_tensor(x_target).reshape(len(x_target), -1)
    parts = {"bce": [], "mse": [], "kl": [], "z": [], "recon": []}
    for i in range(0, len(x_in), batch_size):
        xb = to_unit_float(x_in[i : i + batch_size].to(device))
        target = to_unit_float(x_target[i : i + batch_size].to(device))
        posterior = model.geometry(model.encoder(xb))
        z = posterior.mode
        logits = model.decoder(z).float()
        recon = torch.sigmoid(logits)
        parts["bce"].append(bce(logits, target, reduction="none").mean(1))
        parts["mse"].append((recon - target).square().mean(1))
        parts["kl"].append(posterior.kl().float())
        parts["z"].append(z.float())
        parts["recon"].append(recon)
    out = {k: torch.cat(v).cpu().numpy() for k, v in parts.items()}
    out["n_features"] = x_in.shape[1]
    return out


def _knn(z_train, y_train):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=min(K, len(z_train))).fit(z_train, y_train)


def _accuracy(knn, z, y) -> float | None:
    return float(knn.score(z, y)) if len(y) else None


def _typical_distance(z: np.ndarray, pairs: int = 4000) -> float:
    """The mean distance between two test points drawn at random (fixed draw): the map's own scale, so that a
    shift reads the same on a plane of any size and on the unit sphere."""
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(z), (2, pairs))
    d = float(np.linalg.norm(z[i] - z[j], axis=1).mean())
    return d if d > 0 else 1.0


def _pick(y: np.ndarray) -> dict:
    """Fixed test points for the figures: a class-balanced draw for the trails, one image per class for the grid."""
    rng = np.random.default_rng(0)
    trails = np.sort(rng.choice(len(y), size=min(N_TRAILS, len(y)), replace=False))
    firsts = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)]
    grid = np.array((firsts + [i for i in range(len(y)) if i not in firsts])[:N_GRID])
    return {"trails": trails, "grid": grid}


def _image_shape(dataset: Dataset) -> tuple[int, int] | None:
    shape = tuple(dataset.image_shape)
    if len(shape) == 2:
        return shape
    side = math.isqrt(dataset.n_features)
    return (side, side) if side * side == dataset.n_features else None


def _draw(run, dataset, result, clean, lat, picked, trails, grids, shape) -> list[Path]:
    from ..viz import probe_figures as pf
    from ..viz import plots
    from ..viz.figures import figure_title, titled

    folder = run.path / "figures"
    title = figure_title(run, dataset)

    def save_png(fig, path: Path) -> Path:  # each figure says which run, preset and data set it shows
        return plots.save_png(titled(fig, title), path)

    written = [save_png(pf.probe_curves([(run.path.name, result)]), folder / "probe_curves.png")] if trails else []
    for name, rows in result["corruptions"].items():
        levels = [r["level"] for r in rows]
        if shape is not None:
            written.append(save_png(pf.corruption_grid(name, levels, grids[name], shape), folder / f"probe_grid_{name}.png"))
        for chart in run.model.geometry.charts():
            written.append(save_png(pf.trails_map(chart, name, levels, clean["z"][picked["trails"]],
                                               np.stack(trails[name]), dataset.y_test[picked["trails"]],
                                               z_all=clean["z"]),
                                 folder / f"probe_trails_{name}_{chart.name}.png"))
    if result["novelty"] is not None:
        unseen = np.array(result["novelty"]["classes"])
        written.append(save_png(pf.roc_figure(result["novelty"]), folder / "probe_novelty_roc.png"))
        for chart in run.model.geometry.charts():
            written.append(save_png(pf.novelty_map(chart, lat["z_test"], lat["y_test"], unseen, dataset.classes),
                                 folder / f"probe_novelty_{chart.name}.png"))
    return written


def format_probe(result: dict) -> str:
    """A plain-text table per corruption: level, BCE and MSE against the clean image, 5-NN, shift; then novelty."""
    from .._table import text_table

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    lines = [f"{result['run']}:"]
    for name, rows in result["corruptions"].items():
        table = [[f"{r['level']:g}", f(r["bce"], ".4f"), f(r["mse"], ".4f"), f(r[f"knn{K}"], ".3f"),
                  f(r["shift_rel"], ".3f")] for r in rows]
        lines.append(text_table([name, "BCE", "MSE", f"{K}-NN", "shift"], table))
    nov = result.get("novelty")
    if nov:
        per = ", ".join(f"{c}: {v:.3f}" for c, v in nov["roc_auc_per_class"].items())
        lines.append(f"novelty (classes {', '.join(map(str, nov['classes']))} never seen): ROC AUC "
                     f"{nov['roc_auc']:.3f} ({per})" + (f"; negative ELBO as the score: {nov['roc_auc_neg_elbo']:.3f}"
                                                        if "roc_auc_neg_elbo" in nov else ""))
    return "\n".join(lines)


def probe_curves_png(results: list[tuple[str, dict]], out: str | Path, overwrite: bool = False) -> Path:
    """Several runs' probe curves on one set of axes, as a PNG at ``out`` (replacing only a file latentatlas wrote,
    unless ``overwrite``)."""
    from .._io import atomic_write_bytes
    from ..viz.plots import png_bytes
    from ..viz.probe_figures import probe_curves

    return atomic_write_bytes(out, png_bytes(probe_curves(results)), overwrite)
