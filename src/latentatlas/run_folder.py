"""The run folder on disk: its file names, the manifest that proves latentatlas wrote it and that its files are
intact, its config, and the checkpoint of the last complete epoch. What is done with a run (train, load, evaluate,
redraw) is in ``runs.py``.

A run folder holds::

    config.json          the fully resolved RunConfig
    checkpoint.*         the last complete epoch (weights + optimizer), written atomically each epoch
    model.safetensors    the final weights (never a pickle)
    history.json         per-epoch train/test loss, each term of the objective, and seconds (and, where a run chose
                         among initialisations, their seeds and losses under "n_init")
    metrics.json         evaluation (see latentatlas.metrics)
    latents.npz          train and test latents with labels
    figures/             PNG figures (and an HTML globe for sphere runs)
    estimator.json       a model saved by Autoencoder.save: its parameters and feature names
    scaling.json         ... and its fitted scaling (latentatlas.scaling)
    manifest.json        written last: every file with its size and SHA-256; a folder without it is unfinished
    .latentatlas.lock    held while a command writes the folder (see _lock.py)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ._version import __version__
from ._io import atomic_write_json
from ._guard import MANIFEST, is_run_folder, sha256 as _sha256
from ._lock import LOCK
from .config import RunConfig
from .data import data_reference
from .errors import LatentAtlasError, option
from .weights import load_weights, save_weights

CONFIG, WEIGHTS, HISTORY, METRICS, LATENTS = (
    "config.json", "model.safetensors", "history.json", "metrics.json", "latents.npz",
)
CKPT_TENSORS, CKPT_STATE = "checkpoint.safetensors", "checkpoint.json"


def save_checkpoint(folder: Path, state: dict) -> None:
    """A trainer state into ``folder``: the tensors, then the JSON that names their hash (written last)."""
    tensors, meta = _flatten_state(state)
    save_weights(folder / CKPT_TENSORS, tensors)
    meta["tensors_sha256"] = _sha256(folder / CKPT_TENSORS)
    atomic_write_json(folder / CKPT_STATE, meta)


def load_checkpoint(folder: Path) -> dict | None:
    """The last complete epoch's trainer state, or None if the folder has no consistent checkpoint."""
    if not (folder / CKPT_STATE).is_file() or not (folder / CKPT_TENSORS).is_file():
        return None
    meta = read_json(folder / CKPT_STATE)
    if meta.get("tensors_sha256") != _sha256(folder / CKPT_TENSORS):
        return None  # a crash between the two writes: the tensors are one epoch ahead of the JSON
    return _unflatten_state(load_weights(folder / CKPT_TENSORS), meta)


def has_checkpoint(folder: Path) -> bool:
    try:
        return load_checkpoint(folder) is not None
    except LatentAtlasError:
        return False


def not_a_run_folder(path: Path, doing: str | None = None) -> LatentAtlasError:
    """The one refusal of a path that is not a run folder; ``doing`` says what was refused ("replace")."""
    if doing is None and path.is_file():  # the run's config.json (or another of its files) named, not the run
        return LatentAtlasError(f"{path} is a file, not a run folder: give the folder that holds it ({path.parent})")
    if doing is None:
        return LatentAtlasError(f"{path}: not a run folder (no {CONFIG})")
    return LatentAtlasError(f"{path} exists and is not a run folder: refusing to {doing} it")


def check_replaceable(path: Path, overwrite: bool, name: str, doing: str, unfinished: str = "") -> bool:
    """The one guard of every writer of a whole folder (a run, a model saved by ``Autoencoder.save``): ``path``
    must be a new or empty folder, or one latentatlas wrote (``is_run_folder``) and ``overwrite`` given. Returns
    whether there is a folder to replace. ``name`` is the setting that chose the path and ``doing`` what a folder
    latentatlas did not write is refused for, both for the message; ``unfinished`` is added where it did not finish."""
    if path.exists() and not path.is_dir():
        raise LatentAtlasError(f"{path} is a file, not a run folder: choose another {option(name)}")
    if not path.exists() or not any(p.name != LOCK for p in path.iterdir()):
        return False
    if not is_run_folder(path):  # a folder that merely holds a config.json may be someone's project
        raise not_a_run_folder(path, doing)
    if not overwrite:
        hint = "" if (path / MANIFEST).is_file() else unfinished
        raise LatentAtlasError(f"{path} already exists{hint}: choose another {option(name)}, or pass "
                               f"{option('overwrite', True)} to replace it")
    return True


def read_config(folder: Path) -> RunConfig:
    """The config a run folder was trained with, as saved (not resolved again)."""
    d = read_json(folder / CONFIG)
    if not isinstance(d, dict):
        raise LatentAtlasError(f"{folder / CONFIG}: not a run config (a JSON object of settings is expected)")
    try:
        cfg = RunConfig.from_dict(d)
        data_reference(cfg.data)  # a path or a name: a number or a list here would fail far from the cause
    except LatentAtlasError as e:
        raise LatentAtlasError(f"{folder / CONFIG}: {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise LatentAtlasError(f"{folder / CONFIG}: not a valid run config ({e})") from None
    return cfg


def verify_files(folder: Path, names) -> None:
    """Check each named file that the manifest lists against its recorded size and SHA-256.

    A file changed since the run was written (a flipped bit, a truncation, an edit) is refused in one line rather
    than trusted. A file the manifest does not list is not checked: older runs and files added later stay usable.
    """
    manifest = read_json(folder / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise LatentAtlasError(f"{folder / MANIFEST}: not a latentatlas manifest (no file list)")
    for name in names:
        entry = files.get(name)
        if entry is None:
            continue
        path = folder / name
        if not path.is_file():
            raise LatentAtlasError(f"{path}: missing, though {MANIFEST} lists it")
        if not isinstance(entry, dict) or entry.get("bytes") != path.stat().st_size or entry.get("sha256") != _sha256(path):
            raise LatentAtlasError(f"{path}: changed since the run was written (size or SHA-256 differs from {MANIFEST})")


def write_model(folder: Path, cfg: RunConfig, model, history: list[dict], files: dict[str, object] | None = None
                ) -> None:
    """The trained model's files, as every writer of a folder writes them (``train_run``, ``train_stacked``,
    ``Autoencoder.save``): ``config.json``, the final weights, ``history.json``, and ``files`` (name -> JSON) of
    the writer's own, such as the estimator's fitted scaling. The manifest is written last, by the caller."""
    atomic_write_json(folder / CONFIG, cfg.to_dict())
    save_weights(folder / WEIGHTS, model.state_dict())
    atomic_write_json(folder / HISTORY, history)
    for name, content in (files or {}).items():
        atomic_write_json(folder / name, content)


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
    entries = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    atomic_write_json(folder / MANIFEST, {"latentatlas": __version__, "files": entries})


def _flatten_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split a trainer state into safetensors-ready tensors and JSON-ready metadata."""
    tensors = {f"model.{k}": v for k, v in state["model"].items()}
    opt = state["optimizer"]
    scalars: dict[str, dict] = {}
    for pid, pstate in opt["state"].items():
        for k, v in pstate.items():
            if torch.is_tensor(v) and v.ndim > 0:
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = float(v)
    return tensors, {"history": state["history"], "param_groups": opt["param_groups"], "optim_scalars": scalars,
                     "scheduler": state.get("scheduler")}


def _unflatten_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    opt_state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    for pid, scal in meta["optim_scalars"].items():
        for name, value in scal.items():
            opt_state.setdefault(int(pid), {})[name] = torch.tensor(value, dtype=torch.float32)
    return {"model": model, "optimizer": {"state": opt_state, "param_groups": meta["param_groups"]},
            "scheduler": meta.get("scheduler"), "history": meta["history"]}


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LatentAtlasError(f"{path}: unreadable JSON ({e})") from None
    except RecursionError:  # "[[[[..." nested past Python's stack: damage, not a file latentatlas wrote
        raise LatentAtlasError(f"{path}: unreadable JSON (nested too deeply)") from None


def check_metrics(metrics, path: Path) -> dict:
    """A run's metrics as read: an object of numbers (or nulls), as ``metrics.evaluate`` writes them."""
    bad = (next((k for k, v in metrics.items() if not _number_or_none(v)), None) if isinstance(metrics, dict)
           else "")
    if bad is not None:
        what = f"its {bad!r} is not a number" if bad else "a JSON object is expected"
        raise LatentAtlasError(f"{path}: not a latentatlas metrics file ({what})")
    return metrics


def check_history(history, path: Path) -> list[dict]:
    """A run's history as read: a list of epochs, each an object whose losses and seconds are numbers."""
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise LatentAtlasError(f"{path}: not a latentatlas history (a JSON list of epochs is expected)")
    for i, record in enumerate(history):
        bad = next((k for k, v in record.items() if k in ("epoch", "train_loss", "test_loss", "seconds", "lr")
                    and not _number_or_none(v)), None)
        if bad is not None:
            raise LatentAtlasError(f"{path}: not a latentatlas history (epoch {i + 1}'s {bad!r} is not a number)")
    return history


def _number_or_none(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

