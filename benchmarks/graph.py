"""The exact neighbour graph against the float32 matrix products' own time, per product path, on this CPU.

    .venv/bin/python benchmarks/graph.py [--data fashion-mnist] [--k 15] [--int8-samples 60000] [--json out.json]

Under the AVX2 restriction, prefix the environment of ``latentatlas.hardware.AVX2_ONLY``:
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``.

Reports, in one process: the float32 products alone (every row tile against every column tile, exactly the products
the exact method computes, nothing else); the whole graph (no cache) on each path forced, and on ``auto`` (the
one-off timing included); the paths must agree to the last index. Where int8 is slow (no VNNI / AMX), a full int8
graph takes many minutes: ``--int8-samples`` times it on the first N images only, and the rate is scaled by N**2.
"""

import argparse
import json
import time

import numpy as np
import torch

from latentatlas import graph, hardware
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError


def products_alone(x: np.ndarray, chunk: int = graph.CHUNK) -> float:
    """Seconds of the float32 products of every (row tile, column tile) pair, as _exact tiles them."""
    n, d = x.shape
    cols = max(chunk, min(8 * chunk, graph._SCAN_BYTES // (8 * d)))
    levels = torch.from_numpy(np.bitwise_xor(x, 128).view(np.int8)).float()  # (N, D) centred, as _tile gives
    out = torch.empty(chunk * cols)
    start = time.perf_counter()
    for r0 in range(0, n, chunk):
        a = levels[r0:r0 + chunk]
        for c0 in range(0, n, cols):
            b = levels[c0:c0 + cols]
            torch.mm(a, b.T, out=out[:len(a) * len(b)].view(len(a), len(b)))
    return time.perf_counter() - start


def timed_graph(x, k, products) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    g = graph.knn_graph(x, k, cache_dir=False, progress=False, products=products)
    return time.perf_counter() - start, g


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--k", type=int, default=15)
    p.add_argument("--int8-samples", type=int, default=None, help="time int8 on the first N images only")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    print(hardware.header(), flush=True)
    x = load_dataset(args.data).flat("train")[0]  # (N, D) uint8
    n, d = x.shape
    result = {"machine": hardware.describe(), "data": args.data, "n": n, "features": d, "k": args.k}
    result["float32_products_seconds"] = products_alone(x)
    print(f"{args.data}: {n:,} x {d} features, k = {args.k}", flush=True)
    print(f"  float32 products alone: {result['float32_products_seconds']:.1f} s "
          f"({2 * n * n * d / result['float32_products_seconds'] / 1e9:.0f} GFLOP/s)", flush=True)
    want = None
    for products in ("float32", "int8", "auto"):
        m = args.int8_samples if products == "int8" and args.int8_samples else n
        try:
            seconds, g = timed_graph(x[:m], args.k, products)
        except LatentAtlasError as e:  # int8 where this CPU's int8 kernel is not exact
            print(f"  graph, {products} products: refused: {e}", flush=True)
            result[f"graph_{products}_seconds"] = None
            continue
        if m == n:
            want = g if want is None else want
            assert np.array_equal(g, want), f"{products} differs from float32"
        full = seconds * (n / m) ** 2
        chosen = f" (chose {graph._plan(x.shape, True, 'auto')[0]})" if products == "auto" else ""
        scaled = f", {m:,} samples scaled by (N / {m:,})**2" if m < n else ""
        result[f"graph_{products}_seconds"] = full
        print(f"  graph, {products} products{chosen}: {full:.1f} s{scaled}, "
              f"{full / result['float32_products_seconds']:.2f}x the float32 products", flush=True)
    result["chosen"] = graph._plan(x.shape, True, "auto")[0]
    result["seconds_per_pair"] = {k_: v for (k_, _), v in graph._timed.items()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
