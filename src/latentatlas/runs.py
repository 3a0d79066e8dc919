"""A finished run as an object: :class:`Run` (its settings, model, history and metrics; its latents, data, figures
and explorer), and what is done with one later without retraining: load it, evaluate it again, draw it again.

Training a run into its folder is ``run_training.py``; what the folder holds and how it is proven intact (its files,
manifest and checkpoint) is ``run_folder.py``.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ._guard import check_out, no_links_below
from ._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ._lock import FolderLock, check_free
from .config import RunConfig
from .data import Dataset
from .errors import LatentAtlasError, option
from .metrics import encode, evaluate
from .model import AutoencoderNet
from .run_folder import (CONFIG, HISTORY, LATENTS, MANIFEST, METRICS, WEIGHTS, check_history, check_metrics,
                         not_a_run_folder, read_config, read_json, verify_files, write_manifest)
from .weights import load_weights

IN_MEMORY = "array"  # the ``data`` of a model fitted on arrays in Python: nothing on disk to reload


@dataclass
class Run:
    """A loaded run folder."""

    path: Path
    config: RunConfig
    model: AutoencoderNet
    history: list[dict]
    metrics: dict
    resumed_from_epoch: int = 0  # > 0 when train_run continued a killed run from its checkpoint
    finished: bool = False  # train_run was asked to resume a run that had already trained all its epochs

    def latents(self) -> dict[str, np.ndarray]:
        if (self.path / MANIFEST).is_file():  # a finished run; while training, the manifest is not written yet
            verify_files(self.path, (LATENTS,))
        try:
            with np.load(self.path / LATENTS, allow_pickle=False) as f:
                lat = {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise LatentAtlasError(f"{self.path / LATENTS}: unreadable ({e}); recompute it with "
                                   f"`latentatlas evaluate {self.path}`") from None
        problem = latents_problem(lat, self.model.geometry.dim)
        if problem:
            raise LatentAtlasError(f"{self.path / LATENTS}: {problem}; recompute it with "
                                   f"`latentatlas evaluate {self.path}`")
        return lat

    def dataset(self) -> Dataset:
        """The run's data, rebuilt from its data spec (source, image size, transforms)."""
        if self.config.data == IN_MEMORY:
            raise LatentAtlasError(f"{self.path}: this model was fitted on in-memory arrays (Autoencoder.save), so "
                                   "there is no data set to read back: use it from Python (Autoencoder.load)")
        return self.config.data_spec.load()

    # In a notebook (viz/notebook.py): the run as a card, its figures, its explorer inline.
    def _repr_html_(self) -> str:
        from .viz.notebook import summary_html, thumbnail

        lat = self.latents()
        cfg = self.config
        settings = {"preset": cfg.preset or "custom", "layers": "-".join(map(str, cfg.hidden_sizes or ())),
                    "geometry": f"{cfg.geometry}, latent_dim {cfg.latent_dim}", "data": cfg.data,
                    "epochs": len(self.history), "seed": cfg.seed, "device": cfg.device, "precision": cfg.precision}
        return summary_html(self.path.name, str(self.path), settings, self.metrics,
                            thumbnail(self.model.geometry, lat["z_test"], lat["y_test"]))

    def figures(self, glyphs: bool = False, color_by=None) -> dict:
        """Every figure of the run as a matplotlib figure, by name (``loss_curves``, ``encoder_map_plane``, ...);
        maps coloured by ``color_by`` (``latentatlas.viz.colour``: a value's name, an array, a ``ColorBy``)."""
        import matplotlib.pyplot as plt

        from .viz.figures import run_figures

        figs = run_figures(self, self.dataset(), glyphs=glyphs, color_by=color_by)
        for fig in figs.values():
            plt.close(fig)  # shown where the caller displays it, not again at the end of a notebook cell
        return figs

    def explore(self, max_points: int | None = None, color_by=None):
        """The live explorer of the run, shown inline in a notebook (``.save(path)`` writes the page); points
        coloured by ``color_by`` as in :meth:`figures`."""
        from .viz.explorer import explorer_html
        from .viz.notebook import ExplorerView

        limit = {} if max_points is None else {"max_points": max_points}
        return ExplorerView(explorer_html(self, self.dataset(), color_by=color_by, **limit))


def latents_problem(lat: dict, dim: int) -> str:
    """What is wrong with a run's latents (as ``write_evaluation`` writes them), or "": each split's points
    (N, dim) finite real numbers beside N integer labels."""
    for split in ("train", "test"):
        z, y = lat.get(f"z_{split}"), lat.get(f"y_{split}")
        if z is None or y is None:
            return f"no z_{split} or y_{split} (it holds {', '.join(sorted(lat)) or 'nothing'})"
        if z.dtype.kind != "f" or z.ndim != 2 or z.shape[1] != dim:
            return f"z_{split} is {z.dtype} of shape {z.shape}, not real numbers of shape (N, {dim})"
        if y.dtype.kind not in "iu" or y.shape != (len(z),):
            return f"y_{split} is {y.dtype} of shape {y.shape}, not {len(z)} integer labels"
        if not np.isfinite(z).all():
            return f"z_{split} holds NaN or infinite values"
        if len(y) and y.min() < 0:
            return f"y_{split} holds a negative label"
    return ""


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Load a finished run folder (config, weights, history, metrics) without retraining.

    Each of those files is checked against the manifest first: a run changed on disk since it was written is
    refused rather than trusted.
    """
    return _load_run(path, device, verify=(CONFIG, WEIGHTS, HISTORY, METRICS))


def _load_run(path: str | Path, device: str, verify: tuple[str, ...]) -> Run:
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise not_a_run_folder(path)
    if not (path / MANIFEST).is_file():
        raise LatentAtlasError(f"{path}: the run did not finish (no {MANIFEST}); resume it by training it again with "
                               f"the same settings and {option('resume', True)} (its settings are in {path / CONFIG})")
    state = load_weights(path / WEIGHTS)  # first: a pickle or a truncated file gets its own, clearer message
    verify_files(path, verify)
    # The manifest proves only that the files are as written; a folder re-signed over damage gets here too.
    cfg = read_config(path).resolved()
    model = AutoencoderNet.from_config(cfg, _n_features(state, path / WEIGHTS))
    if cfg.layout == "free":
        from .atlas_map import PlacedMap

        try:
            model.map = PlacedMap.like(state, k=cfg.layout_k, refine_steps=cfg.refine_steps, placement=cfg.placement)
        except LatentAtlasError as e:
            raise LatentAtlasError(f"{path / WEIGHTS}: {e}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise LatentAtlasError(f"{path / WEIGHTS}: weights do not match config.json ({str(e).splitlines()[0]})") from None
    model.to(device).eval()
    metrics = check_metrics(read_json(path / METRICS) if (path / METRICS).is_file() else {}, path / METRICS)
    history = check_history(read_json(path / HISTORY), path / HISTORY)
    return Run(path, cfg, model, history, metrics)


def locked_run(path: str | Path, verify: tuple[str, ...] = (CONFIG, WEIGHTS, HISTORY, METRICS)) -> tuple[Run, FolderLock]:
    """The run at ``path``, loaded under its lock (returned held, for a ``with`` block): what a command reads and
    writes is then one finished run, never one another process is training. Every refusal comes before the lock,
    so a folder that is not a run gets no lock file."""
    check_free(Path(path))  # a run being written: say so, rather than that it did not finish
    _load_run(path, "cpu", verify)
    lock = FolderLock(path).acquire()
    try:
        return _load_run(path, "cpu", verify), lock  # again, under the lock: it may have been replaced meanwhile
    except BaseException:
        lock.release()
        raise


def evaluate_run(path: str | Path, dataset: Dataset | None = None, echo=None) -> dict:
    """Recompute a run's latents and metrics from its saved weights; returns the metrics. ``echo`` gets a line
    once the run and its data are read (so a refusal stays the only line)."""
    run, lock = locked_run(path, verify=(CONFIG, WEIGHTS, HISTORY))  # metrics and latents are recomputed here
    with lock:
        dataset = run.dataset() if dataset is None else dataset
        if echo is not None:  # once the lock is held: every refusal comes before it
            echo(f"evaluating {run.path} on {len(dataset.y_test):,} test images of {dataset.name} ...")
        metrics = write_evaluation(run, dataset, train_seconds=run.metrics.get("train_seconds"))
        write_manifest(run.path)
    return metrics


def redraw_run(path: str | Path, glyphs: bool = False, echo=None, color_by=None) -> list[Path]:
    """Draw a finished run's figures again (``latentatlas plot``); returns the files written. ``echo`` gets a line
    once the run and its data are read (so a refusal stays the only line)."""
    from .viz.colour import resolve
    from .viz.figures import plot_run

    run, lock = locked_run(path)
    with lock:
        dataset = run.dataset()
        no_links_below(run.path, run.path / "figures")  # refused before the line saying it will draw
        run.latents()  # checked, for the same reason
        resolve(color_by, dataset, len(dataset.y_test))  # and a colour that is not there, too
        if echo is not None:
            echo(f"drawing the figures of {path} ...")
        written = plot_run(run, dataset, glyphs=glyphs, color_by=color_by)
        write_manifest(run.path)
    return written


def write_explorer(run: str | Path | Run, out: str | Path, dataset=None, max_points: int | None = None,
                   color_by=None, overwrite: bool = False) -> Path:
    """Write the explorer page of ``run`` (a run folder or a loaded :class:`Run`) to ``out``; returns the path.
    ``out`` may replace only a file latentatlas wrote, unless ``overwrite``."""
    from .viz.explorer import MAX_POINTS, explorer_html

    check_out(out, overwrite)
    run = load_run(run) if not isinstance(run, Run) else run
    html = explorer_html(run, run.dataset() if dataset is None else dataset,
                         MAX_POINTS if max_points is None else max_points, color_by=color_by)
    return atomic_write_text(out, html, overwrite)


def write_evaluation(run: Run, dataset: Dataset, train_seconds: float | None) -> dict:
    """Encode the run's train and test images, score them (``metrics.evaluate``) and write ``latents.npz`` and
    ``metrics.json``; returns the metrics, also set on ``run``."""
    x_train, y_train = dataset.flat("train")
    x_test, y_test = dataset.flat("test")
    # A free layout's training images are where its map put them; its test images are placed on that map.
    placed = run.model.map is not None
    z_train = run.model.map.coords.cpu().numpy() if placed else encode(run.model, x_train)
    z_test = encode(run.model, x_test)
    buf = io.BytesIO()
    np.savez_compressed(buf, z_train=z_train, y_train=y_train, z_test=z_test, y_test=y_test)
    atomic_write_bytes(run.path / LATENTS, buf.getvalue())
    metrics = evaluate(run.model, dataset, z_train=z_train, z_test=z_test, iwae_k=run.config.iwae_k)
    metrics.update(train_seconds=train_seconds, epochs=len(run.history))
    atomic_write_json(run.path / METRICS, metrics)
    run.metrics = metrics
    return metrics


def _n_features(state: dict[str, torch.Tensor], path: Path) -> int:
    """The input size, read from the decoder's last bias."""
    biases = [k for k in state if re.fullmatch(r"decoder\.\d+\.bias", k) and state[k].ndim == 1]
    if not biases:
        raise LatentAtlasError(f"{path}: not the weights of a latentatlas model (no decoder biases)")
    return int(state[max(biases, key=lambda k: int(k.split(".")[1]))].shape[0])
