"""atlas-2d's whole job against UMAP's fit + transform, one after the other in one process (issue 12's time test).

    .venv/bin/python benchmarks/atlas_time.py [--data fashion-mnist] [--epochs 20] [--umap-fits 2]

Times the neighbour graph from cold (no cache), then ``train_run`` of atlas-2d with that graph cached (training,
evaluation and figures; its ``train_seconds`` is the training alone), then UMAP's fit and transform as
``compare --baselines umap`` runs it, ``--umap-fits`` times (the first in a process includes numba's compiling).
"""

import argparse
import tempfile
import time
from pathlib import Path

from latentatlas import hardware
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.experiments.baselines import BASELINES, fit_baseline
from latentatlas.graph import knn_graph
from latentatlas.run_training import train_run


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--umap-fits", type=int, default=2)
    args = p.parse_args()
    cfg = RunConfig(preset="atlas-2d", data=args.data, epochs=args.epochs, seed=0).resolved()
    dataset = load_dataset(args.data)
    start = time.perf_counter()
    knn_graph(dataset.flat("train")[0], cfg.ne_k, cache_dir=False, progress=False)
    graph = time.perf_counter() - start
    print(f"graph (k={cfg.ne_k}, from cold): {graph:.1f} s", flush=True)
    knn_graph(dataset.flat("train")[0], cfg.ne_k, progress=False)  # into the cache, untimed, as a first run leaves it
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run = train_run(cfg, Path(folder) / "atlas-2d", dataset=dataset, progress=False)
        whole = time.perf_counter() - start
    train = run.metrics["train_seconds"]
    print(f"atlas-2d, {args.epochs} epochs: training {train:.1f} s, with evaluation and figures {whole:.1f} s; "
          f"graph + training {graph + train:.1f} s", flush=True)
    import umap  # noqa: F401  imported before the clock starts, as compare does

    for seed in range(args.umap_fits):
        fitted = fit_baseline(BASELINES["umap"][0], dataset, seed)
        print(f"UMAP fit + transform, seed {seed}: {fitted.seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
