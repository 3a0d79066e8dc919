"""Probe the free layout (latentatlas.layout) on mnist-5k against openTSNE, on one thread.

Lays out the 4,000 training images on the plane and the sphere from their 10-NN pixel graph, places the 1,000 test
images by refinement (their 10 nearest training images over the first 50 principal components), and prints test
5-NN accuracy (fit on the training map), trustworthiness (k = 5, test images against their placed positions) and
wall times. openTSNE (defaults, n_jobs=1) fits and transforms the same images on the plane.

With --atlas it also trains a decoder from the map and an encoder onto it (latentatlas.atlas_map) and reports the
encoder's test 5-NN and trust alone and as refinement's start, the test MSE of the decoded placements against the
plain autoencoder's (``mse_test`` of a deep-2d run folder's metrics.json), and a round trip: points spread over the
map (a 20 x 20 grid over the plane map's range; 400 Fibonacci points on the sphere) are decoded, placed again by
refinement from their nearest training images, and the median distance back is given as a share of the map's
diameter. --data fashion-mnist runs the same on 60k / 10k.

    PYTHONPATH=src python benchmarks/layout_probe.py [--only plane sphere opentsne] [--steps 750] ...
    PYTHONPATH=src python benchmarks/layout_probe.py --only plane sphere --atlas
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from latentatlas import hardware
from latentatlas.data import load_dataset
from latentatlas.geometries import get_geometry
from latentatlas.graph import knn_graph
from latentatlas.atlas_map import EPOCHS, fit_decoder, fit_encoder
from latentatlas.layout import EXAGGERATION, NEGATIVES, POINTS_PER_STEP, STEPS, layout, refine

SPACES = {"plane": ("euclidean", 2), "sphere": ("sphere", 3)}
K = 10  # 10 beat 15 and 30 on mnist-5k (docs/maps-research.md, "A free layout")


def scores(train_z, y_train, test_z, y_test, x_test) -> tuple[float, float]:
    knn = KNeighborsClassifier(5).fit(train_z, y_train).score(test_z, y_test)
    return knn, trustworthiness(x_test, test_z, n_neighbors=5)


def spread_points(name: str, train_z: np.ndarray, n: int = 20) -> np.ndarray:
    """n * n points over the map: a grid over the plane map's range, or n * n Fibonacci points on the sphere."""
    if name == "plane":
        lo, hi = train_z.min(0), train_z.max(0)
        g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)), -1)
        return g.reshape(-1, 2).astype(np.float32)
    i = np.arange(n * n) + 0.5
    polar, azimuth = np.arccos(1 - 2 * i / (n * n)), math.pi * (1 + 5**0.5) * i
    return np.c_[np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)].astype(np.float32)


def diameter(z: np.ndarray) -> float:
    """The largest distance between two points of the map (chord on the sphere): between vertices of its hull."""
    from scipy.spatial import ConvexHull

    z = z[ConvexHull(z).vertices]
    return max(np.linalg.norm(z[i:i + 500, None] - z[None], axis=2).max() for i in range(0, len(z), 500))


def decode(decoder, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(decoder(torch.from_numpy(np.asarray(z, np.float32)))).numpy()


def encode(encoder, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return encoder(torch.from_numpy(x)).numpy()


def atlas(name, geometry, train_z, placed_z, x_train, x_test, ds, pca, p_train, test_nbrs, args) -> None:
    """The decoder, the encoder and the round trip on one map; prints one block."""
    t = time.perf_counter()
    decoder = fit_decoder(train_z, x_train, geometry, epochs=args.decoder_epochs, seed=args.seed)
    t_dec = time.perf_counter() - t
    t = time.perf_counter()
    encoder = fit_encoder(x_train, train_z, geometry, epochs=args.encoder_epochs, seed=args.seed)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    enc_z = encode(encoder, x_test)
    t_enc_apply = time.perf_counter() - t
    t = time.perf_counter()
    from_enc = refine(test_nbrs, train_z, geometry, steps=args.refine_steps[-1], seed=args.seed, init=enc_z)
    t_from_enc = time.perf_counter() - t
    train_enc = encode(encoder, x_train)
    print(f"{name:8s} decoder {t_dec:.1f} s ({args.decoder_epochs} epochs)  encoder {t_enc:.1f} s "
          f"({args.encoder_epochs} epochs), applied {t_enc_apply:.2f} s  "
          f"encoder train 5-NN {KNeighborsClassifier(5).fit(train_z, ds.y_train).score(train_enc, ds.y_train):.3f}")
    rows = {**{f"refine {s} from median": z for s, z in placed_z.items()}, "encoder alone": enc_z,
            f"refine {args.refine_steps[-1]} from encoder": from_enc}
    for how, z in rows.items():
        knn, trust = scores(train_z, ds.y_train, z, ds.y_test, x_test)
        mse = float(((decode(decoder, z) - x_test) ** 2).mean())
        print(f"{name:8s} {how:28s} test 5-NN {knn:.3f}  trust {trust:.3f}  decoded test MSE {mse:.4f}"
              + (f"  (refine {t_from_enc:.1f} s)" if "from encoder" in how else ""))
    print(f"{name:8s} training images decoded from their own positions: MSE "
          f"{float(((decode(decoder, train_z) - x_train) ** 2).mean()):.4f}")
    # The round trip: decode points spread over the map, place the decoded images again, measure the way back.
    spread = spread_points(name, train_z)
    t = time.perf_counter()
    images = decode(decoder, spread)  # (400, 784)
    nbrs = NearestNeighbors(n_neighbors=args.k).fit(p_train).kneighbors(pca.transform(images))[1]
    back = refine(nbrs, train_z, geometry, steps=args.refine_steps[-1], seed=args.seed)
    back_enc = encode(encoder, images)
    t_round = time.perf_counter() - t
    span = diameter(train_z)
    share = np.linalg.norm(back - spread, axis=1) / span
    share_enc = np.linalg.norm(back_enc - spread, axis=1) / span
    near = NearestNeighbors(n_neighbors=1).fit(train_z).kneighbors(spread)[0][:, 0]
    on_map = near <= np.median(NearestNeighbors(n_neighbors=2).fit(train_z).kneighbors(train_z)[0][:, 1]) * 5
    print(f"{name:8s} round trip ({len(spread)} points, diameter {span:.2f}): median distance back "
          f"{np.median(share):.3f} of the diameter by refinement, {np.median(share_enc):.3f} by the encoder; "
          f"on the {on_map.sum()} points near training points (within 5 median NN spacings) {np.median(share[on_map]):.3f}"
          f" / {np.median(share_enc[on_map]):.3f}  ({t_round:.1f} s)", flush=True)


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=["plane", "sphere", "opentsne"])
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--exaggeration", type=float, default=EXAGGERATION)
    p.add_argument("--negatives", type=int, default=NEGATIVES)
    p.add_argument("--points-per-step", type=int, default=POINTS_PER_STEP)
    p.add_argument("--refine-steps", type=int, nargs="+", default=[100], help="several: one line each")
    p.add_argument("--refine-exaggeration", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=K, help="neighbours of the training graph and of each test image")
    p.add_argument("--data", default="mnist-5k")
    p.add_argument("--atlas", action="store_true", help="also the decoder, the encoder and the round trip")
    p.add_argument("--decoder-epochs", type=int, default=EPOCHS)
    p.add_argument("--encoder-epochs", type=int, default=EPOCHS)
    p.add_argument("--baselines", type=Path, nargs="*",
                   default=[Path("/tmp/bm/demo-native") / r for r in ("deep-2d", "deep-s2", "atlas-2d", "atlas-s2")],
                   help="run folders whose test MSE and 5-NN to print beside (those trained on --data)")
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
    for run in args.baselines if args.atlas else ():
        if (run / "metrics.json").exists() and json.loads((run / "config.json").read_text())["data"] == args.data:
            m, c = (json.loads((run / f).read_text()) for f in ("metrics.json", "config.json"))
            print(f"baseline {c['preset']} ({c['epochs']} epochs): test MSE {m['mse_test']:.4f}  "
                  f"test 5-NN {m['knn5']:.3f}  trust {m['trustworthiness']:.3f}  ({run})")
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
        else:
            geometry = get_geometry(*SPACES[name])
            t = time.perf_counter()
            train_z = layout(graph, geometry, steps=args.steps, seed=args.seed, init=p_train[:, : geometry.dim],
                             exaggeration=args.exaggeration, negatives=args.negatives,
                             points_per_step=args.points_per_step)
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
        if args.atlas and name != "opentsne":
            atlas(name, geometry, train_z, {h.split()[1]: z for h, z in placed.items()}, x_train, x_test, ds, pca,
                  p_train, test_nbrs, args)

if __name__ == "__main__":
    main()
