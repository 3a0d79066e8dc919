"""The robustness and novelty table of issue 14, reproducible in one command.

For Fashion-MNIST and mnist-5k, and for deep-2d, deep-3d, deep-s2 and a denoising deep-s2 (``train_noise``): one
run per model, probed at every noise level, occlusion size and rotation angle (``latentatlas probe``'s defaults),
and one run per model and single held-out class (``holdout:classes=c``, c = 0..9) for the ROC AUC of novelty
detection (reconstruction BCE as the score). Finished runs are reused, so a killed job continues where it stopped.

    PYTHONPATH=src python benchmarks/probe_table.py --out runs/probe-table

writes ``table.md`` and ``table.json`` in ``--out``. Epochs are few, to fit a shared 2-core machine; the caption says
how many.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

from latentatlas import hardware
from latentatlas._io import atomic_write_json, atomic_write_text
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset, parse_transform
from latentatlas.data.corruptions import CORRUPTIONS
from latentatlas.experiments.probe import parse_levels, probe_run
from latentatlas.run_folder import read_config
from latentatlas.run_training import resolve_runtime, train_run
from latentatlas.runs import load_run

MODELS = {  # name: settings
    "deep-2d": {"preset": "deep-2d"},
    "deep-3d": {"preset": "deep-3d"},
    "deep-s2": {"preset": "deep-s2"},
    "deep-s2 denoising": {"preset": "deep-s2", "train_noise": 0.3},
}
SWEPT = ("noise", "occlude", "rotate")


def run_or_reuse(cfg: RunConfig, folder: Path, dataset, echo) -> object:
    """The finished run in ``folder`` if it was trained with ``cfg``, else a fresh one."""
    want = resolve_runtime(cfg)
    if (folder / "manifest.json").is_file() and (folder / "metrics.json").is_file():
        saved = read_config(folder)
        if saved == want:
            return load_run(folder)
    t0 = time.perf_counter()
    run = train_run(cfg, folder, overwrite=True, progress=False, dataset=dataset, plot=False)
    echo(f"  trained {folder.name} in {time.perf_counter() - t0:.0f} s")
    return run


def main():
    print(hardware.header(), flush=True)  # what these figures were measured on
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/probe-table"))
    ap.add_argument("--data", default="fashion-mnist,mnist-5k")
    ap.add_argument("--epochs", default="fashion-mnist=10,mnist-5k=20", help="epochs of the probed runs per data set")
    ap.add_argument("--novelty-epochs", default="fashion-mnist=3,mnist-5k=10",
                    help="epochs of each held-out-class run per data set")
    ap.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    epochs = {k: int(v) for k, v in (p.split("=") for p in args.epochs.split(","))}
    nov_epochs = {k: int(v) for k, v in (p.split("=") for p in args.novelty_epochs.split(","))}
    classes = [int(c) for c in args.classes.split(",")]
    levels = {name: parse_levels(name, CORRUPTIONS[name].probe_levels) for name in SWEPT}
    echo = functools.partial(print, flush=True)
    t_start = time.perf_counter()
    table = {"epochs": epochs, "novelty_epochs": nov_epochs, "seed": args.seed, "data": {}}
    for data in args.data.split(","):
        dataset = load_dataset(data)
        entry = table["data"][data] = {}
        for model, settings in MODELS.items():
            echo(f"{data} / {model}")
            slug = model.replace(" ", "-")
            cfg = RunConfig(data=data, epochs=epochs[data], seed=args.seed, **settings)
            run = run_or_reuse(cfg, args.out / data / slug, dataset, echo)
            result = probe_run(run, levels, seed=args.seed, dataset=dataset)
            aucs = {}
            for c in classes:
                held = f"holdout:classes={c}"
                derived = parse_transform(held).apply(dataset)
                cfg_c = RunConfig(data=data, epochs=nov_epochs[data], seed=args.seed, transforms=(held,), **settings)
                run_c = run_or_reuse(cfg_c, args.out / data / f"{slug}-without-{c}", derived, echo)
                aucs[c] = probe_run(run_c, {}, seed=args.seed, dataset=derived, figures=False)["novelty"]["roc_auc"]
            worst = min(aucs, key=aucs.get)
            entry[model] = {"metrics": run.metrics, "probe": result["corruptions"], "novelty_auc": aucs,
                            "novelty_mean": float(np.mean(list(aucs.values()))), "novelty_worst": aucs[worst],
                            "novelty_worst_class": worst}
            echo(f"  novelty ROC AUC mean {entry[model]['novelty_mean']:.3f}, worst {aucs[worst]:.3f} (class {worst})")
            atomic_write_json(args.out / "table.json", table)
    table["seconds"] = time.perf_counter() - t_start
    table["machine"] = hardware.describe()
    atomic_write_json(args.out / "table.json", table)
    atomic_write_text(args.out / "table.md", markdown(table, classes))
    echo(markdown(table, classes))


def markdown(table: dict, classes) -> str:
    lines = ["Made by `PYTHONPATH=src python benchmarks/probe_table.py --out runs/probe-table` (issue 14): reconstruction "
             "error and 5-NN accuracy of corrupted test images, and novelty detection of one held-out class at a time. "
             "Few epochs, to fit a shared 2-core machine: the models are undertrained, and the held-out-class runs "
             "more so than the probed ones.\n"]
    for data, models in table["data"].items():
        classes_named = load_dataset(data).classes
        lines.append(f"### {data}\n")
        lines.append(f"Probed runs trained {table['epochs'][data]} epochs; each held-out-class run "
                     f"{table['novelty_epochs'][data]} epochs (seed {table['seed']}, one run per class). Cells: test "
                     "MSE against the clean image / 5-NN accuracy of the corrupted test latents (fit on clean "
                     "training latents).\n")
        for name in SWEPT:
            levels = [r["level"] for r in next(iter(models.values()))["probe"][name]]
            lines.append(f"| {CORRUPTIONS[name].label} | " + " | ".join(f"{v:g}" for v in levels) + " |")
            lines.append("|---" * (len(levels) + 1) + "|")
            for model, e in models.items():
                lines.append(f"| {model} | " + " | ".join(f"{r['mse']:.4f} / {r['knn5']:.3f}" for r in e["probe"][name])
                             + " |")
            lines.append("")
        lines.append("Novelty detection, ROC AUC of the per-image reconstruction BCE, one class held out of training "
                     "at a time:\n")
        names = [str(c) if classes_named is None else f"{c} {classes_named[c]}" for c in classes]
        lines.append("| model | mean | worst (class) | " + " | ".join(names) + " |")
        lines.append("|---" * (len(classes) + 3) + "|")
        for model, e in models.items():
            aucs = {int(k): v for k, v in e["novelty_auc"].items()}
            lines.append(f"| {model} | {e['novelty_mean']:.3f} | {e['novelty_worst']:.3f} ({e['novelty_worst_class']}) | "
                         + " | ".join(f"{aucs[c]:.3f}" for c in classes) + " |")
        lines.append("")
    if "seconds" in table:
        lines.append(f"Whole table: {table['seconds'] / 60:.1f} minutes.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
