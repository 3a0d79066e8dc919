"""Training a run into its folder: :func:`train_run` (one run) and :func:`train_stacked` (seeds of one shape
together, each into its own folder), and :func:`build_trainer`, the one training code path shared by run folders,
the estimator and the benchmarks.

Every check comes before anything is written; a folder is replaced only where its manifest or lock file proves
latentatlas wrote it, and only once the new run has finished beside it. The finished run is a
:class:`latentatlas.runs.Run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write_folder, atomic_write_json, check_folder_writable
from ._lock import FolderLock, check_free
from .config import SETTINGS, RunConfig
from .data import Dataset, check_pixels, data_reference
from .errors import LatentAtlasError, option
from .losses import build_objective
from .losses.neighbours import NEIGHBOUR_STEPS
from .model import AutoencoderNet, count_parameters
from .run_folder import (CKPT_STATE, CONFIG, MANIFEST, check_replaceable, has_checkpoint, is_run_folder,
                         load_checkpoint, not_a_run_folder, read_config, save_checkpoint, write_manifest,
                         write_model)
from .runs import Run, load_run, write_evaluation
from .train import Adam, Callback, Trainer, initialisation_seed, pick_device, pick_precision


SETTING_NAMES = frozenset(f.name for f in SETTINGS)


def resolve_runtime(cfg: RunConfig) -> RunConfig:
    """A resolved config with ``device`` and ``precision`` fixed for this machine ("auto" decided)."""
    cfg = cfg.resolved()
    device = pick_device(cfg.device)
    return dataclasses.replace(cfg, data=data_reference(cfg.data), device=device,
                               precision=pick_precision(cfg.precision, device))


def resolve_layout_engine(cfg: RunConfig, dataset: Dataset | None = None) -> tuple[RunConfig, Dataset | None]:
    """``cfg`` with a free layout's engine "auto" decided for its training images (``layout_engines.engine_for``), so that
    the run's config.json names the engine that laid its map out and a finished run compares equal to the config
    that made it; and ``dataset``, loaded here where the decision needs its size and none was given."""
    from .layout_engines import AUTO, engine_for

    if cfg.layout != "free" or cfg.layout_engine != AUTO:
        return cfg, dataset
    from .geometries import get_geometry

    dataset = cfg.data_spec.load() if dataset is None else dataset
    engine = engine_for(cfg.layout_engine, get_geometry(cfg.geometry, cfg.latent_dim), len(dataset.y_train))
    return dataclasses.replace(cfg, layout_engine=engine), dataset


# Every run whose epochs are not given trains at least this many steps (batches): the neighbour term needs them
# (losses/neighbours.py), and a small data set's 10 epochs are too few for any model (1,200 images: 100 steps).
MIN_STEPS = NEIGHBOUR_STEPS


def enough_steps(cfg: RunConfig, epochs_given: bool, dataset: Dataset | None = None
                 ) -> tuple[RunConfig, Dataset | None, str | None]:
    """``cfg`` with its epochs raised, where they were not given, to the fewest that make ``MIN_STEPS`` steps on
    the training set, for every preset: training needs steps, not passes (docs/maps-research.md), so a small data
    set takes more epochs (63 on mnist-5k), as UMAP gives small data sets more epochs too. The estimator's
    parameters are never changed (scikit-learn's rule: fit uses what it is given).

    Returns the config, ``dataset`` (loaded here where the rule needs its size and none was given, so that the
    caller need not load it twice) and a line saying what the rule did (None where it did nothing); train, compare
    and the demo each apply the rule by this one call."""
    if epochs_given:
        return cfg, dataset, None
    dataset = cfg.data_spec.load() if dataset is None else dataset
    steps_per_epoch = math.ceil(len(dataset.y_train) / cfg.batch_size)
    epochs = max(cfg.epochs, math.ceil(MIN_STEPS / steps_per_epoch))
    if epochs == cfg.epochs:
        return cfg, dataset, None
    note = (f"epochs: {epochs}, the fewest that make {MIN_STEPS:,} steps of {cfg.batch_size} on {len(dataset.y_train):,} "
            f"training samples ({steps_per_epoch} an epoch), as every run gets where its epochs are not given")
    return dataclasses.replace(cfg, epochs=epochs), dataset, note


def build_trainer(cfg: RunConfig, x_train, callbacks=(), progress: bool | None = None, draw=None) -> Trainer:
    """The one training code path shared by the CLI, run folders and the estimator; ``cfg`` from resolve_runtime.

    ``x_train`` (N, n_features) is the training set the trainer will be given: terms of the objective that need it
    (a neighbour graph) are built from it, and they may draw the batches too. ``draw`` is the data set's
    ``draw_train`` (dynamic binarisation), applied to every training batch.
    """
    n_features = int(np.prod(x_train.shape[1:]))
    check_pixels(x_train, "the training samples")  # scaled already (DataSpec.load, the estimator): never raw numbers
    placed = fit_run_map(cfg, x_train, progress) if cfg.layout == "free" else None  # the map every initialisation shares

    def initialisation(i: int) -> AutoencoderNet:
        torch.manual_seed(initialisation_seed(cfg.seed, i))
        model = AutoencoderNet.from_config(cfg, n_features)
        model.map = placed
        return model

    model = initialisation(0)
    objective = build_objective(cfg, model.geometry, x_train)
    # Every setting the trainer has a field of (epochs, batch size, seed, device, n_init, ...) goes to it by name: a
    # new trainer setting is a line in the settings table and a field of Trainer, not a third line here.
    same = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(Trainer) if f.name in SETTING_NAMES}
    return Trainer(model, objective.loss_fn(), optimizer_factory=Adam(cfg.lr, cfg.lr_schedule),
                   batch_sampler=objective.batch_sampler(cfg.batch_size), callbacks=callbacks, progress=progress,
                   draw=draw, model_factory=initialisation, **same)


def fit_run_map(cfg: RunConfig, x_train, progress: bool | None = None):
    """A free-layout run's map of its training images (``atlas_map.fit_map``) with the run's settings; its
    ``seconds`` include the neighbour graph's."""
    from ._tensors import as_tensor, to_unit_float
    from .atlas_map import fit_map
    from .geometries import get_geometry
    from .graph import knn_graph

    if cfg.layout_k >= len(x_train):
        raise LatentAtlasError(f"layout_k={cfg.layout_k} must be smaller than the number of training samples "
                               f"({len(x_train)})")
    t0 = time.perf_counter()
    graph = knn_graph(x_train, cfg.layout_k, progress=progress)
    x = to_unit_float(as_tensor(x_train)).reshape(len(x_train), -1)
    placed = fit_map(x, get_geometry(cfg.geometry, cfg.latent_dim), k=cfg.layout_k, steps=cfg.layout_steps,
                     refine_steps=cfg.refine_steps, placement=cfg.placement, seed=cfg.seed, progress=progress,
                     neighbours=graph, engine=cfg.layout_engine)
    placed.seconds = time.perf_counter() - t0
    return placed


def train_run(cfg: RunConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False,
              progress: bool | None = None, dataset: Dataset | None = None, plot: bool = True,
              callbacks=(), tensorboard: str | Path | None = None, echo=None) -> Run:
    """Train ``cfg`` into the run folder ``out``, evaluate it, draw its figures and return the loaded run.

    ``echo`` (``print``, say) gets a line as each step starts: what is trained where (device, precision), the
    evaluation, the figures. Resuming a run that has finished all its epochs trains nothing: the run is returned
    with ``finished`` set.

    Everything that can be checked is checked before anything is written: a bad config, unknown data or an
    existing folder (without ``overwrite`` or ``resume``) raise ``LatentAtlasError`` and leave the disk untouched.
    Only a folder latentatlas wrote is ever replaced (``overwrite``), and the new run is trained beside it and takes
    its place at the end, so an interrupted or failed run leaves the old one as it was. The folder is locked while
    it is written: a second process writing into it is refused.
    """
    out = Path(out)
    user_precision = cfg.precision
    cfg = resolve_runtime(cfg)
    dataset = cfg.data_spec.load() if dataset is None else dataset
    cfg, dataset = resolve_layout_engine(cfg, dataset)
    if tensorboard is not None:
        check_folder_writable(tensorboard)
    # The trainer first: terms that refuse the data (a neighbour graph's k) do so before the folder is touched.
    checkpoint = CheckpointCallback(out)
    trainer = build_trainer(cfg, dataset.flat("train")[0], [checkpoint, *callbacks], progress, dataset.draw_train)
    if out.is_dir():
        check_free(out)  # a run being written is refused as that, whatever it holds so far
    if _folder_mode(out, cfg, overwrite=overwrite, resume=resume) == "finished":  # refuse now, before making the folder
        return _finished(out, cfg)
    if tensorboard is not None:
        from .viz.tensorboard import TensorBoardCallback

        trainer.callbacks = [*trainer.callbacks, TensorBoardCallback(tensorboard, dataset)]
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        lock = FolderLock(out).acquire()
    except BaseException:
        if made and not any(out.iterdir()):
            out.rmdir()
        raise
    with lock, contextlib.ExitStack() as held:
        mode = _folder_mode(out, cfg, overwrite=overwrite, resume=resume)  # again: another writer may have finished
        if mode == "finished":
            return _finished(out, cfg)
        say = echo or (lambda line: None)  # from here on, what fails is a step of the run, not a refusal
        if dataset.scaling_note:
            say(dataset.scaling_note)
        requested = cfg.precision if cfg.precision == user_precision else f"{cfg.precision} (auto)"
        say(f"training {cfg.description} ({count_parameters(trainer.model):,} parameters) on {dataset.name}: "
            f"{len(dataset.y_train):,} images, {cfg.epochs} epoch{'s' * (cfg.epochs != 1)}, device {cfg.device}, "
            f"precision {requested}")
        if cfg.n_init > 1 and mode != "resume":
            say(f"  first {cfg.n_init} initialisations, {cfg.init_epochs} epochs each; the lowest training loss goes on")
        if mode != "replace":
            start_state = _resume_state(out) if mode == "resume" else None
            try:
                return _train_into(out, cfg, trainer, checkpoint, dataset, plot, start_state, say)
            except BaseException:
                if made and not has_checkpoint(out):
                    shutil.rmtree(out, ignore_errors=True)  # not one complete epoch to resume from: leave no half folder
                raise
        runs = []

        def write(folder: Path) -> None:
            held.enter_context(FolderLock(folder))  # the new run is locked before it takes the old one's place
            runs.append(_train_into(folder, cfg, trainer, checkpoint, dataset, plot, None, say))

        atomic_write_folder(out, write)
        runs[0].path = out
        return runs[0]


def left_by_interruption(out: str | Path) -> tuple[str, int]:
    """What a :func:`train_run` into ``out`` that was interrupted (Ctrl-C) left there: ("kept", n) where ``out`` is
    the finished run of n epochs it was replacing, untouched; ("saved", n) where n epochs are checkpointed and
    ``resume`` continues from them; ("nothing", 0) where no epoch finished."""
    out = Path(out)
    try:
        state = load_checkpoint(out) if out.is_dir() else None
    except LatentAtlasError:
        state = None
    n = 0 if state is None else len(state["history"])
    if (out / MANIFEST).is_file():  # the manifest comes last, and resuming removes it: an old, finished run
        return "kept", n
    return ("saved", n) if n else ("nothing", 0)


def _finished(out: Path, cfg: RunConfig) -> Run:
    """A resumed run that has trained all its epochs: nothing to do but load it."""
    run = load_run(out, device=cfg.device)
    run.resumed_from_epoch, run.finished = cfg.epochs, True
    return run


def _train_into(folder: Path, cfg: RunConfig, trainer: Trainer, checkpoint: CheckpointCallback, dataset: Dataset,
                plot: bool, start_state: dict | None, say) -> Run:
    checkpoint.folder = folder
    model = trainer.model
    start_epoch = 0
    if start_state is not None:
        trainer.load_state_dict(start_state)
        start_epoch = len(trainer.history)
    atomic_write_json(folder / CONFIG, cfg.to_dict())  # on resume too: it may have raised the number of epochs

    t0 = time.perf_counter()
    trainer.fit(dataset.flat("train")[0], dataset.flat("test")[0], start_epoch=start_epoch)
    seconds = sum(r["seconds"] for r in trainer.history) if start_epoch else time.perf_counter() - t0
    if model.map is not None and not start_epoch:
        seconds += model.map.seconds  # a free layout's map was made before its first epoch
    return _finish_run(Run(folder, cfg, model, trainer.history, {}, resumed_from_epoch=start_epoch), dataset,
                       seconds, plot, say)


def train_stacked(cfgs: list[RunConfig], outs: list[str | Path], *, dataset: Dataset, progress: bool | None = None,
                  plot: bool = True) -> list[Run]:
    """Train runs that differ only in the seed together, stacked (``latentatlas.stack``), each into its own run
    folder, written and locked as :func:`train_run` writes and locks one; each folder must be new or empty.

    Raises ``stack.NotStackable`` (a LatentAtlasError) before anything is written where stacking does not apply
    (``stack.why_not_stack``); a folder that would not be trained fresh is refused as :func:`train_run` refuses it.
    """
    from .stack import NotStackable, member_trainer_state, stack_trainers, why_not_stack

    cfgs, outs = [resolve_runtime(c) for c in cfgs], [Path(o) for o in outs]
    x_train = dataset.flat("train")[0]
    members = [build_trainer(cfg, x_train, progress=False, draw=dataset.draw_train) for cfg in cfgs]
    reason = why_not_stack(members, cfgs)
    if reason is not None:
        raise NotStackable(reason)
    for out, cfg in zip(outs, cfgs):
        if out.is_dir():
            check_free(out)
        _folder_mode(out, cfg, overwrite=False, resume=False)  # "fresh", or a refusal; nothing written yet
    made = [not out.exists() for out in outs]
    with contextlib.ExitStack() as held:
        try:
            for out, cfg in zip(outs, cfgs):
                out.mkdir(parents=True, exist_ok=True)
                held.enter_context(FolderLock(out))
                _folder_mode(out, cfg, overwrite=False, resume=False)  # again: another writer may have been first
                atomic_write_json(out / CONFIG, cfg.to_dict())
            stacked = stack_trainers(members, callbacks=[_StackedCheckpoints(outs)], progress=progress)
            t0 = time.perf_counter()
            stacked.fit(x_train, dataset.flat("test")[0])
            seconds = (time.perf_counter() - t0) / len(cfgs)  # each member's share of the stack's time
            runs = []
            for m, (out, cfg, member) in enumerate(zip(outs, cfgs, members)):
                state = member_trainer_state(stacked, m)
                member.model.load_state_dict(state["model"])
                runs.append(_finish_run(Run(out, cfg, member.model, state["history"], {}), dataset, seconds, plot,
                                            lambda line: None))
            return runs
        except BaseException:
            for out, new in zip(outs, made):
                if new and out.exists() and not has_checkpoint(out):
                    shutil.rmtree(out, ignore_errors=True)  # not one complete epoch to resume from: no half folder
            raise


def _finish_run(run: Run, dataset: Dataset, seconds: float, plot: bool, say) -> Run:
    """Write a trained run's weights, history, evaluation, figures and, last, its manifest."""
    write_model(run.path, run.config, run.model, run.history)
    say(f"evaluating on {len(dataset.y_test):,} test images ...")
    write_evaluation(run, dataset, train_seconds=seconds)
    if plot:
        from .viz.figures import plot_run

        say(f"drawing the figures into {run.path / 'figures'} ...")
        plot_run(run, dataset)
    write_manifest(run.path)
    return run


class CheckpointCallback(Callback):
    """Saves weights + optimizer state after every epoch; JSON written last names the tensor file's hash."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        save_checkpoint(self.folder, trainer.state_dict())


class _StackedCheckpoints(Callback):
    """Each stacked member's checkpoint in its own folder, as its own run writes it (so each resumes alone)."""

    def __init__(self, folders: list[Path]):
        self.folders = folders

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        from .stack import member_trainer_state

        for m, folder in enumerate(self.folders):
            save_checkpoint(folder, member_trainer_state(trainer, m))


def _folder_mode(out: Path, cfg: RunConfig, *, overwrite: bool, resume: bool) -> str:
    """What training into ``out`` will do: "fresh", "resume", "finished" (resumed with no epoch left) or "replace";
    refuses (writing nothing) where it may not.

    ``resume`` continues from the last complete epoch, or starts afresh where nothing was saved yet, so a killed
    job can always be restarted with the same command.
    """
    if out.exists() and not out.is_dir():
        raise LatentAtlasError(f"{out} is a file, not a run folder: choose another {option('out')}")
    if resume and (out / CONFIG).is_file():
        if not (is_run_folder(out) or (out / CKPT_STATE).is_file()):
            raise not_a_run_folder(out, "resume")
        saved = read_config(out)
        saved = dataclasses.replace(saved, data=data_reference(saved.data))
        if dataclasses.replace(saved, epochs=cfg.epochs) != cfg:
            differ = [f"{option(f.name)} {getattr(saved, f.name)!r} there, {getattr(cfg, f.name)!r} now"
                      for f in dataclasses.fields(cfg) if f.compare and f.name != "epochs"
                      and getattr(saved, f.name) != getattr(cfg, f.name)]
            raise LatentAtlasError(f"{out}: {option('resume', True)} needs the settings the run was started with, "
                                   f"but {'; '.join(differ)} (only {option('epochs')} may change)")
        state = load_checkpoint(out)
        if state is not None and len(state["history"]) > cfg.epochs:
            raise LatentAtlasError(f"{out}: {option('epochs', cfg.epochs)} is fewer than the {len(state['history'])} "
                                   f"epochs already trained; {option('resume', True)} only adds epochs")
        if state is not None and len(state["history"]) == cfg.epochs and (out / MANIFEST).is_file():
            return "finished"
        return "resume"
    replace = check_replaceable(out, overwrite, "out", "overwrite" if overwrite else "use",
                                unfinished=f" (it did not finish: {option('resume', True)} continues it)")
    return "replace" if replace else "fresh"


# The temp files of our own atomic writes (tempfile's 8 random characters): the only hidden files cleared on resume.
_OUR_TMP = re.compile(r"\.[^/]+\.[a-z0-9_]{8}\.tmp")


def _resume_state(out: Path) -> dict | None:
    """Under the folder's lock: clear what a kill interrupted and return the checkpoint to continue from."""
    for tmp in out.iterdir():
        if _OUR_TMP.fullmatch(tmp.name) and tmp.is_file() and not tmp.is_symlink():
            tmp.unlink()  # a write that a kill interrupted; the file it was replacing is intact
    (out / MANIFEST).unlink(missing_ok=True)
    return load_checkpoint(out)
