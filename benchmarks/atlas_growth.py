"""How a free layout's cost grows with the number of points: Fashion-MNIST's training images tiled with noise to
60,000, 120,000 and 240,000 points (memory-mapped), each laid out on the plane; time and peak memory of each step.

Each size runs in its own process (so that its peak resident memory is its own): the neighbour graph (exact up to
``graph.APPROXIMATE_ABOVE`` points, faiss HNSW above), the PCA-50 index and the layout (``atlas_map.fit_map`` with
the run's defaults, and the presets' layout engine, auto, unless ``--layout-engine`` names one), then the placement
of Fashion-MNIST's 10,000 test images on the map. A tile is each image with a fresh +-8 levels of uniform noise
(seeded), as uint8, in a memory-mapped .npy.

    PYTHONPATH=src python benchmarks/atlas_growth.py [--sizes 60000 120000 240000] [--layout-engine E] [--json F]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from latentatlas import hardware


def tiled(x: np.ndarray, n: int, path: Path) -> np.ndarray:
    """``n`` rows: ``x`` repeated, each copy after the first with +-8 levels of seeded uniform noise."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, x.shape[1]))
    rng = np.random.default_rng(0)
    for start in range(0, n, len(x)):
        block = x[: min(len(x), n - start)].astype(np.int16)
        if start:
            block += rng.integers(-8, 9, size=block.shape, dtype=np.int16)
        out[start:start + len(block)] = np.clip(block, 0, 255)
    out.flush()
    return np.load(path, mmap_mode="r")


def one_size(n: int, folder: Path, engine: str) -> dict:
    import torch

    from latentatlas.atlas_map import fit_map
    from latentatlas.data import load_dataset
    from latentatlas.geometries import get_geometry
    from latentatlas.graph import knn_graph

    ds = load_dataset("fashion-mnist")
    x = tiled(ds.x_train.reshape(len(ds.x_train), -1), n, folder / f"x{n}.npy")
    t = time.perf_counter()
    graph = knn_graph(x, 10, cache_dir=False, progress=False)
    t_graph = time.perf_counter() - t
    peaks = {"graph": peak_mib()}
    t = time.perf_counter()
    pixels = np.asarray(x, np.float32)
    pixels /= 255  # in place: one float copy of the images, as a run holds
    placed = fit_map(torch.from_numpy(pixels), get_geometry("euclidean", 2),
                     neighbours=graph, engine=engine, progress=False)
    t_map = time.perf_counter() - t
    peaks["index_and_layout"] = peak_mib()
    x_test = torch.from_numpy(ds.x_test.reshape(len(ds.x_test), -1).astype(np.float32) / 255)
    t = time.perf_counter()
    placed.place(x_test, get_geometry("euclidean", 2))
    t_place = time.perf_counter() - t
    peaks["place_10k"] = peak_mib()
    return {"n": n, "layout_engine": engine, "graph_s": t_graph, "index_and_layout_s": t_map, "place_10k_s": t_place,
            "peak_rss_mib": peaks["place_10k"], "peak_rss_mib_after": peaks}


def peak_mib() -> float:
    """The process's peak resident memory so far, MiB (Linux reports KiB): read after each step, it says which
    step raised it."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    print(hardware.header(), flush=True)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[60_000, 120_000, 240_000])
    p.add_argument("--layout-engine", default="auto", help="auto (the presets'), latentatlas or opentsne")
    p.add_argument("--json", type=Path)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one size, JSON on stdout
    args = p.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one_size(args.one, Path(tmp), args.layout_engine)))
        return
    rows = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--layout-engine", args.layout_engine],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{n:>8,} points: graph {r['graph_s']:.1f} s, index + layout {r['index_and_layout_s']:.1f} s, "
              f"placing 10k {r['place_10k_s']:.1f} s, peak {r['peak_rss_mib']:.0f} MiB (after each step: "
              + ", ".join(f"{k} {v:.0f}" for k, v in r["peak_rss_mib_after"].items()) + ")", flush=True)
    if args.json:
        from latentatlas._io import atomic_write_json

        atomic_write_json(args.json, {"machine": hardware.describe(), "rows": rows})


if __name__ == "__main__":
    main()
