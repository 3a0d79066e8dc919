"""Do ring and torus latents recover the angles of synthetic head-direction and grid-cell populations?

    PYTHONPATH=src python benchmarks/neural_manifolds.py --epochs 60 --seeds 3 --n-init 6 --init-epochs 20 --out runs/neural

For each source, trains the variational torus (vtorus: the ring T^1 for head-direction, T^2 for grid cells), the
deterministic torus, the flat latent of the same width (R^2 or R^4, read as angles of coordinate pairs about their
mean) and the Gaussian VAE of that width, each keeping the best of ``--n-init`` initialisations after
``--init-epochs`` (the ``n_init`` setting; past the KL warm-up, during which a folding variational run may still
score best), and fits PCA with as many components; each is scored by the circular
correlation of its test-set angles with the true ones (metrics.circular_correlation: the worst circle's |Fisher-Lee
correlation| after the best relabelling, reflection and shear of the circles). Prints and writes
neural_table.md and neural.json under --out; each run's figures (encoder maps coloured by the true angle's bin)
are in its folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from latentatlas import hardware
from latentatlas._io import atomic_write_json, atomic_write_text
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.geometries import get_geometry
from latentatlas.metrics import circular_correlation
from latentatlas.run_folder import MANIFEST
from latentatlas.run_training import train_run
from latentatlas.runs import load_run

SOURCES = {"grid-cells": 2, "head-direction": 1}  # circles of the true state
MODELS = ("vtorus", "torus", "euclidean", "gaussian")


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--kl-warmup", type=int, default=10)
    ap.add_argument("--n-init", type=int, default=6, help="initialisations per run, the best kept")
    ap.add_argument("--init-epochs", type=int, default=20, help="epochs of each initialisation before choosing")
    ap.add_argument("--out", type=Path, default=Path("runs/neural"))
    args = ap.parse_args()
    table: dict[str, dict[str, list[float]]] = {}
    for source, n in SOURCES.items():
        ds = load_dataset(source)
        row = table.setdefault(source, {})
        from sklearn.decomposition import PCA

        z = PCA(2 * n).fit(ds.flat("train")[0]).transform(ds.flat("test")[0])
        angles = get_geometry("euclidean", 2 * n).angles(torch.as_tensor(z)).numpy()
        row["PCA"] = [circular_correlation(angles, ds.factors_test)]
        for seed in range(args.seeds):
            for model in MODELS:
                dim = n if "torus" in model else 2 * n
                folder = args.out / f"{source}-{model}-seed{seed}"
                cfg = RunConfig(preset=None, hidden_sizes=(128, 64), geometry=model, latent_dim=dim, data=source,
                                epochs=args.epochs, seed=seed, kl_warmup=args.kl_warmup, n_init=args.n_init,
                                init_epochs=args.init_epochs, device="cpu")
                run = load_run(folder) if (folder / MANIFEST).is_file() else train_run(
                    cfg, folder, overwrite=True, dataset=ds, progress=False)
                name = f"{model} ({'T' if 'torus' in model else 'R'}^{dim})"
                row.setdefault(name, []).append(run.metrics["circular_corr"])
                print(source, name, "seed", seed, f"{run.metrics['circular_corr']:.3f}", flush=True)
                write(table, args)


def write(table, args) -> None:
    lines = [f"Circular correlation of the test set's latent angles with the true ones ({args.epochs} epochs, "
             f"128-64 PReLU MLPs, KL warm-up {args.kl_warmup} epochs for the variational ones, the best of "
             f"{args.n_init} initialisations after {args.init_epochs} epochs kept); mean ± s.d. over "
             "seeds, then each seed's value.", "", "| data | model | circular correlation | per seed |", "|---|---|---|---|"]
    for source, row in table.items():
        for name, values in row.items():
            v = np.array(values, float)
            sd = f" ± {v.std(ddof=1):.3f}" if len(v) > 1 else ""
            lines.append(f"| {source} | {name} | {v.mean():.3f}{sd} | {', '.join(f'{x:.3f}' for x in v)} |")
    atomic_write_text(args.out / "neural_table.md", "\n".join(lines) + "\n")
    atomic_write_json(args.out / "neural.json", {**table, "machine": hardware.describe()})
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
