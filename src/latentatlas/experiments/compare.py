"""Honest comparisons: several models x several seeds, mean and spread, with baselines (PCA, UMAP, t-SNE).
This module trains or loads the runs and fits the baselines; ``compare_outputs`` turns the results into the table,
compare.csv / .json and the maps figure.

Every model and every baseline is evaluated by the same protocol (latentatlas.metrics): test BCE and MSE, k-NN
accuracy of test latents against train latents, trustworthiness on the fixed test subset. A baseline is fitted on
the training images and places the test images into its fitted space, as a model's encoder does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..config import SETTINGS as CONFIG_SETTINGS
from ..config import RunConfig
from ..data import Dataset
from ..errors import LatentAtlasError, option
from ..nets import PRESETS
from ..run_folder import CONFIG, MANIFEST, is_run_folder, not_a_run_folder, read_config
from ..run_training import enough_steps, resolve_layout_engine, resolve_runtime, train_run, train_stacked
from ..runs import Run, load_run
from ..schedules import get_recipe
from ..stack import NotStackable, stack_pays
from .._tensors import quiet, tqdm
from ..train import Callback
from .baselines import BASELINES, BaselineMap, baseline_metrics, fit_baseline, resolve_baselines
from .compare_outputs import compared_keys

DEFAULT_PRESETS = ("deep-2d", "deep-3d", "deep-3d-narrow", "deep-s2")
SETTINGS = tuple(f.name for f in CONFIG_SETTINGS if f.name != "seed")  # what tells two models apart
ARCHITECTURE = ("preset", "hidden_sizes", "geometry", "latent_dim")  # what a preset's name already says


class Comparison(NamedTuple):
    results: dict  # {model: {metric: [one value per seed]}}, models and baselines
    runs: list[Run]  # the runs to draw: compare's seed 0 of each model, compare_runs' every run given
    maps: list[BaselineMap]  # the 2-D baselines' maps (their first seed), drawn beside the runs'


def compare(presets=DEFAULT_PRESETS, seeds: int = 3, data: str = "mnist-5k", out: str | Path = "runs/compare",
            epochs: int | None = None, baselines: str | Sequence[str] = ("pca",), progress: bool | None = None,
            echo=print, *, pca: bool | None = None, recipe: str | None = None,
            stack: bool | None = None, workers: int = 1) -> Comparison:
    """Train what is missing under ``out/<preset>/seed<k>``; returns the :class:`Comparison`.

    Every setting and every run folder already in ``out`` is checked before anything is trained. A folder is reused
    only if its config.json equals the config this call would train, every setting included (a finished run is
    loaded, an unfinished one resumed), so an interrupted comparison continues where it stopped; a folder that holds
    anything else is refused, never trained over.

    ``baselines`` are names of :data:`BASELINES` (a list, or one comma-separated string), checked before anything
    is trained (their libraries too), then fitted on the training images: once, or once per seed 0 .. seeds-1 for a
    stochastic one. ``pca`` is the deprecated switch of 0.1.0: False removes "pca" from ``baselines``, True adds it.

    ``recipe`` (:data:`latentatlas.schedules.RECIPES`, None: the tutorial's) says how each model trains;
    ``epochs``, if given, overrides its number of epochs. Where neither ``epochs`` nor ``recipe`` is given, every
    model trains at least ``MIN_STEPS`` steps (:func:`latentatlas.run_training.enough_steps`); a recipe chosen by
    name trains its own epochs, as it says. The new seeds of a preset train stacked
    (``latentatlas.stack``: together, each into its own
    run folder) where ``stack`` is True, or where it is None and stacking measured faster on this device and
    precision (``stack.stack_pays``); where stacking does not apply (a neighbour term, say), they train separately
    and a line says why. With ``workers`` > 1 the runs trained separately train side by side in that many
    processes, each with an equal share of this process's torch threads.
    """
    baselines = resolve_baselines(baselines, pca)
    presets = list(presets)
    if not presets:
        raise LatentAtlasError(f"no presets given: choose one or more of {', '.join(PRESETS)}")
    twice = [p for p in presets if presets.count(p) > 1]
    if twice:
        raise LatentAtlasError(f"preset {twice[0]!r} given twice: give each preset once")
    if not isinstance(seeds, int) or seeds < 1:
        raise LatentAtlasError(f"seeds={seeds!r} is out of range: it must be an integer >= 1")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise LatentAtlasError(f"workers={workers!r} is out of range: it must be an integer >= 1")
    out = Path(out)
    jobs, dataset = [], None
    for preset in presets:
        settings = get_recipe(recipe or "tutorial").settings(preset)
        if epochs is not None:
            settings["epochs"] = epochs
        for seed in range(seeds):
            cfg = resolve_runtime(RunConfig(preset=preset, data=data, seed=seed, **settings))
            cfg, dataset, note = enough_steps(cfg, epochs is not None or recipe is not None, dataset)
            cfg, dataset = resolve_layout_engine(cfg, dataset)
            if note and seed == 0:
                echo(f"{preset}: {note}")
            folder = out / preset / f"seed{seed}"
            _check_folder(folder, cfg)
            jobs.append((cfg, folder))
    dataset = jobs[0][0].data_spec.load() if dataset is None else dataset
    results: dict[str, dict[str, list]] = {}
    first_runs = []
    stacked = _train_stacked(jobs, dataset, stack, progress, echo)
    pending = [(cfg, f) for cfg, f in jobs if f not in stacked and not (f / MANIFEST).is_file()]
    if workers > 1 and len(pending) > 1:
        _train_in_workers(pending, workers, echo, progress)
    for cfg, folder in jobs:
        if folder in stacked:
            run = stacked[folder]
        elif (folder / MANIFEST).is_file():
            run = load_run(folder)
        else:
            echo(f"training {cfg.preset}, seed {cfg.seed} ...")
            run = train_run(cfg, folder, resume=True, dataset=dataset, progress=progress)
        _collect(results, cfg.preset, run.metrics)
        if cfg.seed == 0:
            first_runs.append(run)
    maps = _fit_baselines(results, baselines, dataset, range(seeds), "", echo)
    return Comparison(results, first_runs, maps)


def _train_stacked(jobs, dataset: Dataset, stack: bool | None, progress, echo) -> dict[Path, Run]:
    """Train each preset's new seeds stacked where ``stack`` asks for it; {folder: run} of those trained."""
    done: dict[Path, Run] = {}
    if stack is False:
        return done
    for preset in dict.fromkeys(cfg.preset for cfg, _ in jobs):
        fresh = [(cfg, f) for cfg, f in jobs if cfg.preset == preset and not (f.exists() and any(f.iterdir()))]
        if len(fresh) < 2 or (stack is None and not stack_pays(fresh[0][0])):
            continue
        try:
            echo(f"training {preset}, seeds {', '.join(str(cfg.seed) for cfg, _ in fresh)} stacked ...")
            runs = train_stacked([c for c, _ in fresh], [f for _, f in fresh], dataset=dataset, progress=progress)
        except NotStackable as e:
            echo(f"training {preset} separately: {e.reason}")
            continue
        done.update({f: run for (_, f), run in zip(fresh, runs)})
    return done


def _train_in_workers(jobs, workers: int, echo, progress: bool | None = None) -> None:
    """Train each (config, folder) of ``jobs`` in one of ``workers`` processes into its run folder (loaded afterwards
    as any other), with one progress bar over all their epochs. Each process gets an equal share of this process's
    torch threads: the tutorial's small networks use one thread nearly as well as two, so on 2 cores two runs side
    by side did 1.26x the steps of one run on both (BENCHMARKS.md)."""
    import multiprocessing as mp
    import threading
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import torch
    workers = min(workers, len(jobs))
    threads = max(1, torch.get_num_threads() // workers)
    echo(f"training {len(jobs)} runs in {workers} processes of {threads} thread{'s' * (threads != 1)} each ...")
    ctx = mp.get_context("spawn")  # forking after torch has started its threads is unsafe
    ticks = ctx.Queue()  # a worker puts 1 per finished epoch, None when this process says stop
    bar = tqdm(total=sum(cfg.epochs for cfg, _ in jobs), unit="epoch", disable=quiet(progress), leave=False,
               dynamic_ncols=True)
    counter = threading.Thread(target=lambda: [bar.update(1) for _ in iter(ticks.get, None)], daemon=True)
    counter.start()
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, ticks)) as pool:
            futures = {pool.submit(_train_job, cfg.to_dict(), str(folder)): cfg for cfg, folder in jobs}
            try:
                for future in as_completed(futures):
                    future.result()  # a worker's LatentAtlasError arrives here as itself
                    echo(f"  trained {futures[future].preset}, seed {futures[future].seed}")
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        ticks.put(None)
        counter.join(timeout=5)
        bar.close()


_WORKER: dict = {}  # in a worker process: the progress queue and the data sets, loaded once per spec


def _init_worker(threads: int, ticks) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["ticks"] = ticks


class _Tick(Callback):
    """Tells the parent process each finished epoch."""

    def on_epoch_end(self, trainer, record):
        _WORKER["ticks"].put(1)


def _train_job(config: dict, folder: str) -> None:
    cfg = RunConfig.from_dict(config)
    spec = cfg.data_spec
    if spec not in _WORKER:
        _WORKER[spec] = spec.load()
    train_run(cfg, folder, resume=True, dataset=_WORKER[spec], progress=False, callbacks=[_Tick()])


def compare_runs(paths, baselines: str | Sequence[str] = ("pca",), echo=print, *,
                 pca: bool | None = None) -> Comparison:
    """Summarise existing run folders; runs whose configs differ only in the seed are grouped as seeds of one model.

    Runs that differ in any other setting (data, epochs, ...) are separate models, labelled by their preset plus the
    settings that tell them apart (``deep-2d data=digits``). Baselines (as in :func:`compare`) are fitted per data
    set, a stochastic one once per seed of the runs on that data set, and labelled with the data set when the runs
    use more than one.
    """
    baselines = resolve_baselines(baselines, pca)
    runs = [load_run(p) for p in paths]
    for run in runs:
        run.latents()  # checked now: a damaged latents.npz is refused before the table and any output
    groups: dict[RunConfig, list[Run]] = {}  # config with seed 0 -> its runs (RunConfig equality ignores ``extra``)
    for run in runs:
        group = groups.setdefault(dataclasses.replace(run.config, seed=0), [])
        same = [r for r in group if r.config.seed == run.config.seed]
        if same:
            raise LatentAtlasError(f"{same[0].path} and {run.path} have the same settings and seed: give each run once")
        group.append(run)
    results: dict[str, dict[str, list]] = {}
    maps: list[BaselineMap] = []
    bases = [g[0].config.preset or g[0].path.name for g in groups.values()]
    for label, group in zip(_labels(bases, list(groups)), groups.values()):
        for run in group:
            _collect(results, label, run.metrics)
    if baselines:
        datasets: dict = {}  # data spec -> its runs (the first loads the data set)
        for run in runs:
            datasets.setdefault(run.config.data_spec, []).append(run)
        for spec, on_spec in datasets.items():
            suffix = "" if len(datasets) == 1 else f" data={spec.source}" + (
                "" if spec.image_size is None else f" image_size={spec.image_size}") + "".join(
                f" {t}" for t in spec.transforms)
            seeds = sorted({r.config.seed for r in on_spec})
            maps += _fit_baselines(results, baselines, on_spec[0].dataset(), seeds, suffix, echo)
    return Comparison(results, runs, maps)


def _fit_baselines(results: dict, names: list[str], dataset: Dataset, seeds, suffix: str,
                   echo) -> list[BaselineMap]:
    """Each baseline's rows: fitted once, or once per seed when it is stochastic; a line before and after each fit.
    Returns the first fit's map of each 2-D baseline."""
    n = len(dataset.flat("train")[0])
    y_test = dataset.flat("test")[1]
    maps = []
    for baseline in (b for name in names for b in BASELINES[name]):
        for seed in seeds if baseline.seeded else [0]:
            what = f"{baseline.name}{suffix}" + (f" (seed {seed})" if baseline.seeded else "")
            echo(f"fitting {what} on {n:,} images ...")
            fitted = fit_baseline(baseline, dataset, seed)
            echo(f"fitted {what} in {fitted.seconds:.1f} s")
            _collect(results, f"{baseline.name}{suffix}", baseline_metrics(fitted, dataset))
            if fitted.z_test.shape[1] == 2 and not any(m.name == f"{baseline.name}{suffix}" for m in maps):
                maps.append(BaselineMap(f"{baseline.name}{suffix}", seed if baseline.seeded else None,
                                        fitted.z_test, np.asarray(y_test), decodes=fitted.model is not None))
    return maps


def _collect(results: dict, model: str, metrics: dict) -> None:
    keys = compared_keys()
    entry = results.setdefault(model, {m: [] for m in keys})
    for m in keys:
        entry[m].append(metrics.get(m))


def _check_folder(folder: Path, cfg: RunConfig) -> None:
    """Refuse a run folder that holds anything but a run, finished or not, of exactly ``cfg``."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return
    if not is_run_folder(folder):  # its manifest or lock file says latentatlas made it; a config.json alone does not
        raise not_a_run_folder(folder, "use")
    if not (folder / CONFIG).is_file():
        return  # a run killed before it wrote its config: resuming starts it afresh
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
