"""Probe the free layout (latentatlas.layout) on mnist-5k against openTSNE, on one thread.

Lays out the 4,000 training images on the plane and the sphere from their 10-NN pixel graph, places the 1,000 test
images by refinement (their 10 nearest training images over the first 50 principal components), and prints test
5-NN accuracy (fit on the training map), trustworthiness (k = 5, test images against their placed positions) and
wall times. openTSNE (defaults, n_jobs=1) fits and transforms the same images on the plane, and its map is also
refined onto by latentatlas's placement (the layout engine's ablation: openTSNE's layout, latentatlas's transform).

--data fashion-mnist runs the same on 60k / 10k. The decoder and encoder fitted to such a map, and the round trip,
are the atlas presets' (``latentatlas compare --presets atlas-2d atlas-s2``; latentatlas.atlas_map).

    PYTHONPATH=src python benchmarks/layout_probe.py [--only plane sphere opentsne] [--steps 750] ...
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from latentatlas import hardware
from latentatlas.data import load_dataset
from latentatlas.geometries import get_geometry
from latentatlas.graph import knn_graph
from latentatlas.layout import EXAGGERATION, LEARNING_RATE, NEGATIVES, POINTS_PER_STEP, STEPS, layout, refine

SPACES = {"plane": ("euclidean", 2), "sphere": ("sphere", 3)}
K = 10  # 10 beat 15 and 30 on mnist-5k (docs/maps-research.md, "A free layout")


def scores(train_z, y_train, test_z, y_test, x_test) -> tuple[float, float]:
    knn = KNeighborsClassifier(5).fit(train_z, y_train).score(test_z, y_test)
    return knn, trustworthiness(x_test, test_z, n_neighbors=5)


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=["plane", "sphere", "opentsne"])
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--exaggeration", type=float, default=EXAGGERATION)
    p.add_argument("--negatives", type=int, default=NEGATIVES)
    p.add_argument("--lr", type=float, default=LEARNING_RATE, help="Adam's, in kernel lengths")
    p.add_argument("--points-per-step", type=int, default=POINTS_PER_STEP)
    p.add_argument("--refine-steps", type=int, nargs="+", default=[100], help="several: one line each")
    p.add_argument("--refine-exaggeration", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=K, help="neighbours of the training graph and of each test image")
    p.add_argument("--data", default="mnist-5k")
    args = p.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(args.data)
    x_train = ds.x_train.reshape(len(ds.x_train), -1).astype(np.float32) / 255  # (4000, 784)
    x_test = ds.x_test.reshape(len(ds.x_test), -1).astype(np.float32) / 255  # (1000, 784)
    t = time.perf_counter()
    graph = knn_graph(ds.x_train, args.k, progress=False)
    pca = PCA(50, random_state=0).fit(x_train)
    p_train = pca.transform(x_train)
    test_nbrs = NearestNeighbors(n_neighbors=args.k).fit(p_train).kneighbors(pca.transform(x_test))[1]  # (1000, k)
    print(f"graph + PCA-50 test neighbours: {time.perf_counter() - t:.1f} s")
    for name in args.only:
        if name == "opentsne":
            import openTSNE

            t = time.perf_counter()
            emb = openTSNE.TSNE(n_jobs=1, random_state=args.seed).fit(x_train)
            fit = time.perf_counter() - t
            t = time.perf_counter()
            placed = {"transform": np.asarray(emb.transform(x_test))}
            place = {"transform": time.perf_counter() - t}
            train_z = np.asarray(emb)
            for steps in args.refine_steps:  # latentatlas's placement on openTSNE's map: the layout-engine ablation
                t = time.perf_counter()
                placed[f"refine {steps}"] = refine(test_nbrs, train_z, get_geometry("euclidean", 2), steps=steps,
                                                   seed=args.seed, exaggeration=args.refine_exaggeration)
                place[f"refine {steps}"] = time.perf_counter() - t
        else:
            geometry = get_geometry(*SPACES[name])
            t = time.perf_counter()
            train_z = layout(graph, geometry, steps=args.steps, seed=args.seed, init=p_train[:, : geometry.dim],
                             exaggeration=args.exaggeration, negatives=args.negatives,
                             points_per_step=args.points_per_step, learning_rate=args.lr)
            fit = time.perf_counter() - t
            placed, place = {}, {}
            for steps in args.refine_steps:
                t = time.perf_counter()
                placed[f"refine {steps}"] = refine(test_nbrs, train_z, geometry, steps=steps, seed=args.seed,
                                                   exaggeration=args.refine_exaggeration)
                place[f"refine {steps}"] = time.perf_counter() - t
        train_knn = KNeighborsClassifier(5).fit(train_z, ds.y_train).score(train_z, ds.y_train)  # itself included
        for how, test_z in placed.items():
            knn, trust = scores(train_z, ds.y_train, test_z, ds.y_test, x_test)
            print(f"{name:8s} test 5-NN {knn:.3f}  trust {trust:.3f}  (train 5-NN {train_knn:.3f})  "
                  f"layout {fit:.1f} s  {how} {place[how]:.1f} s", flush=True)

if __name__ == "__main__":
    main()
