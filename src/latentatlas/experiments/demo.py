"""The tutorial in one go: train deep-2d, deep-3d and deep-s2, and the same plane and sphere networks fitted to a
laid-out map of the images (atlas-2d, atlas-s2: test images placed on the map by refinement); evaluate, draw every
figure, compare."""

from __future__ import annotations

from pathlib import Path

from .._guard import check_out
from .._table import text_table
from ..config import RunConfig
from ..data import load_dataset
from ..atlas_map import PLACED
from ..metrics import METRIC
from ..run_training import MIN_STEPS, enough_steps, train_run
from ..runs import Run

DEMO_PRESETS = ("deep-2d", "deep-3d", "deep-s2", "atlas-2d", "atlas-s2")
TABLE = ("epochs", "n_params", "bce_test", "knn5", "knn5_encoder", "train_seconds")  # the metrics shown, as its table prints them


def run_demo(out: str | Path = "runs/demo", data: str = "mnist-5k", epochs: int | None = None, seed: int = 0,
             progress: bool | None = None, echo=print) -> list[Run]:
    """Train the demo presets into ``out/<preset>``; earlier demo runs there are replaced. ``epochs``: every
    preset's; None: the tutorial's 10, or as many as make up ``MIN_STEPS`` steps on this data where 10 make fewer
    (:func:`latentatlas.run_training.enough_steps`)."""
    out = Path(out)
    configs = [RunConfig(preset=preset, data=data, seed=seed, **({} if epochs is None else {"epochs": epochs}))
               for preset in DEMO_PRESETS]
    configs = [cfg.resolved() for cfg in configs]  # every setting checked before anything is said or trained
    check_out(out / "report.html")
    dataset = load_dataset(data)
    configs = [enough_steps(cfg, epochs is not None, dataset)[0] for cfg in configs]
    runs = []
    for cfg in configs:
        rule = "" if epochs is not None else f", at least {MIN_STEPS:,} steps"
        echo(f"training {cfg.preset} on {dataset.name} ({len(dataset.y_train):,} images, {cfg.epochs} epochs{rule}) ...")
        runs.append(train_run(cfg, out / cfg.preset, overwrite=True, progress=progress, dataset=dataset))
    return runs


def comparison_table(runs: list[Run]) -> str:
    """A plain-text table: epochs, parameters, test BCE, 5-NN accuracy (and a free layout's encoder-only 5-NN) and
    training seconds per run, with a line saying how a free layout's test images were placed."""
    rows = [[r.path.name, *(METRIC[k].format(r.metrics.get(k)) for k in TABLE)] for r in runs]
    table = text_table(["run", *(METRIC[k].header for k in TABLE)], rows)
    if any(r.model.map is not None for r in runs):
        table += (f"\natlas runs: {PLACED['refine']}; {METRIC['knn5_encoder'].header}: placed by the encoder's one "
                  "pass instead")
    return table
