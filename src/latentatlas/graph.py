"""The k nearest neighbours of every training sample in input space: the graph a neighbour-embedding loss pulls along.

Exact up to ``APPROXIMATE_ABOVE`` samples, in tiles of rows against columns with a running top-k, so memory stays
bounded; approximate above it with faiss' HNSW index (the ``graph`` extra). Either way the graph is cached on disk,
keyed by a hash of the data's bytes, k, the method and ``FORMAT``.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write
from .errors import LatentAtlasError
from ._tensors import quiet, tqdm  # the one choice of progress bar

FORMAT = 1  # bump when a change alters the graphs computed, so old cache files are no longer read
# Measured on one core, 784 pixels: exact costs ~4 ns a pair (60,000 images: 15 s; 100,000: 42 s), approximate
# ~0.15 ms a sample (100,000: 14 s; 200,000: 29 s). Approximate wins from ~40,000 on, but exact up to 100,000 keeps
# MNIST-sized sets exact and free of the optional dependency, at a one-off (cached) minute at most.
APPROXIMATE_ABOVE = 100_000
CHUNK = 1024  # rows of a tile; a tile is CHUNK x 8 CHUNK: ~100 MB of int64 keys and int32 products at the default
_SCAN_BYTES = 1 << 26  # data read 64 MB at a time when hashing and feeding the approximate index
# HNSW settings (200,000 Fashion-MNIST-like images: recall@15 0.986; 4,000 MNIST digits: recall@10 0.997); part of
# the cache key.
_HNSW = {"M": 16, "efConstruction": 40, "efSearch": 48}
_GRID_TOL = 1e-4  # floats within this many 1/255 steps of a level are 8-bit pixels (float32 rounding is ~1e-5)


def knn_graph(x, k, *, method: str = "auto", cache_dir=None, progress: bool | None = None,
              chunk: int = CHUNK) -> np.ndarray:
    """The indices of each sample's k nearest other samples, by Euclidean distance between pixels scaled to [0, 1].

    Parameters
    ----------
    x : array of shape (N, ...)
        uint8 pixels 0..255 or floats in [0, 1]; may be a read-only memory map, which is read in chunks and never
        converted whole.
    k : int
        Neighbours per sample, 1 <= k < N.
    method : {"auto", "exact", "approximate"}
        ``auto`` is exact up to ``APPROXIMATE_ABOVE`` samples and approximate (faiss HNSW, ``pip install
        'latentatlas[graph]'``) above. Exact: 8-bit data (uint8, or floats on the 1/255 grid) give exact integer
        distances, other floats are compared in float64 to ~1e-10; ties go to the lower index. Approximate: recall
        ~0.98 at 1/255 resolution; with several threads, two runs may differ (the cache keeps the first).
    cache_dir : path-like, optional
        Folder of cached graphs; defaults to ``latentatlas.data.cache_dir() / "graphs"``. ``False`` caches nothing.
    progress : bool, optional
        Show a progress bar; None shows one only on a terminal.
    chunk : int
        Rows per tile of the exact method (tiles are chunk x 8 chunk); only memory and speed depend on it.

    Returns
    -------
    ndarray of shape (N, k), int64
        Row i lists i's neighbours, nearest first; i itself is never among them.

    Examples
    --------
    >>> x = np.array([[0], [10], [11], [30]], dtype=np.uint8)
    >>> knn_graph(x, 2, cache_dir=False).tolist()
    [[1, 2], [2, 0], [1, 0], [2, 1]]
    """
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
        raise LatentAtlasError(f"no samples to build a neighbour graph from: data of shape {x.shape}, "
                               "(N, features) needed")
    x = x.reshape(len(x), -1)  # (N, D), a view of a memory map too
    n = len(x)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise LatentAtlasError(f"k must be a whole number of neighbours, got {k!r}")
    if k < 1:
        raise LatentAtlasError(f"k={k}: at least 1 neighbour per sample is needed")
    if k >= n:
        raise LatentAtlasError(f"k={k} must be smaller than the number of samples ({n})")
    if method not in ("auto", "exact", "approximate"):
        raise LatentAtlasError(f"unknown method {method!r}: choose auto, exact or approximate")
    if method == "auto":
        method = "exact" if n <= APPROXIMATE_ABOVE else "approximate"
    digest, grid = _scan(x, progress)
    k = int(k)
    tag = method if method == "exact" else "hnsw-" + "-".join(f"{a}{b}" for a, b in _HNSW.items())
    path = None
    if cache_dir is not False:
        if cache_dir is None:
            from .data import cache_dir as data_cache_dir  # lazily: the data package is not needed otherwise
            cache_dir = data_cache_dir() / "graphs"
        path = Path(cache_dir) / f"knn-{digest}-k{k}-{tag}-v{FORMAT}.npy"
        graph = _read(path, n, k)
        if graph is not None:
            return graph
    compute, passes = (_exact, 1) if method == "exact" else (_approximate, 2)  # approximate: add, then search
    with tqdm(total=passes * n, unit="sample", desc=f"{k}-NN graph ({method})", disable=quiet(progress),
              leave=False) as bar:
        graph = compute(x, k, grid, chunk, bar)
    if path is not None:
        try:
            atomic_write(path, lambda tmp: _save(tmp, graph))
        except OSError as e:  # a graph that took minutes is still returned when the cache cannot keep it
            warnings.warn(f"the neighbour graph was not cached in {path.parent}: {e}", stacklevel=2)
    return graph


def _scan(x: np.ndarray, progress) -> tuple[str, bool]:
    """One sequential pass: the content hash, the pixel check and whether the data are 8-bit levels."""
    from .data import check_pixels  # lazily, like cache_dir
    h = hashlib.blake2b(f"{x.dtype.str}{x.shape}".encode(), digest_size=16)
    rows = max(1, _SCAN_BYTES // x[0].nbytes)
    grid = True
    with tqdm(total=len(x), unit="sample", desc="hashing", disable=quiet(progress), leave=False) as bar:
        for lo in range(0, len(x), rows):
            block = np.ascontiguousarray(x[lo:lo + rows])  # (R, D), a view for C-ordered data
            check_pixels(block, "neighbour graph data")
            h.update(memoryview(block).cast("B"))
            if grid and block.dtype != np.uint8:
                levels = block * 255  # (R, D), in the data's own float type
                grid = bool(np.abs(levels - np.rint(levels)).max() <= _GRID_TOL)
            bar.update(len(block))
    return h.hexdigest(), grid


def _tile(x: np.ndarray, lo: int, size: int, grid: bool) -> torch.Tensor:
    """Rows lo:lo+size (R, D): int8 levels shifted by -128 (distances are unchanged), or float64 values."""
    block = np.asarray(x[lo:lo + size])
    if not grid:
        return torch.from_numpy(block.astype(np.float64))
    if block.dtype == np.uint8:
        return torch.from_numpy(np.bitwise_xor(block, 128).view(np.int8))  # v - 128 in two's complement
    return torch.from_numpy((np.rint(block * 255.0) - 128).astype(np.int8))


def _exact(x: np.ndarray, k: int, grid: bool, chunk: int, bar) -> np.ndarray:
    """Row tiles against column tiles, keeping each row's k smallest keys (distance, then index) as it goes."""
    n, d = x.shape
    cols = max(chunk, min(8 * chunk, _SCAN_BYTES // (8 * d)))  # narrower column tiles for wide samples
    # int8 x int8 -> int32 (VNNI) is exact and 3x float32 matmul's speed here. Not below 8 features: oneDNN skips a
    # size-1 inner dimension (pytorch#195066); not past 131,071, where int32 sums could overflow. float64 products of
    # levels are exact too (below 2**53), only slower.
    fast = grid and 8 <= d < 2**31 // 128**2 and hasattr(torch, "_int_mm")
    # A row's order needs only |b|^2 - 2 a.b (its own |a|^2 is common to the row). A key is that * n + index, so one
    # int64 order is "nearer, then lower index" and ties resolve without a sort. 8-bit levels give whole numbers;
    # float scores (|.| <= 3d) are rounded to 2**-q, q as fine as the int64 range allows (~1e-10 for 784 x 100,000).
    scale = 1.0 if grid else 2.0 ** int(np.floor(np.log2(2.0**62 / (3 * (d + 1) * n))))
    never = torch.iinfo(torch.int64).max
    # One products tile and one keys tile, reused: a fresh 30 MB tensor per tile costs more in page faults than the
    # arithmetic on it (4 ns a pair with reuse, 9-12 without).
    products = torch.empty(chunk * cols, dtype=torch.int32 if fast else torch.float64)
    keys = torch.empty(chunk * cols, dtype=torch.int64)
    base = torch.empty(n, dtype=torch.int64)  # (N,) round(|b|^2 * scale) * n + index: a key's column part
    for lo in range(0, n, cols):
        t = _tile(x, lo, cols, grid).to(torch.float64)
        base[lo:lo + len(t)] = torch.round((t * t).sum(1) * scale).to(torch.int64) * n + torch.arange(lo, lo + len(t))
    graph = np.empty((n, k), np.int64)  # (N, k)
    for r0 in range(0, n, chunk):
        a = _tile(x, r0, chunk, grid)  # (R, D)
        top = None
        for c0 in range(0, n, cols):
            b = _tile(x, c0, cols, grid)  # (C, D): read again for each row tile, to bound memory
            g = products[:len(a) * len(b)].view(len(a), len(b))  # (R, C) a.b
            key = keys[:len(a) * len(b)].view(len(a), len(b))  # (R, C)
            if fast:
                torch._int_mm(a, b.T, out=g)
            else:
                torch.mm(a.to(torch.float64), b.to(torch.float64).T, out=g)
                g.mul_(scale).round_()
            torch.add(base[c0:c0 + len(b)], key.copy_(g), alpha=-2 * n, out=key)
            diag = torch.arange(max(r0, c0), max(r0, c0, min(r0 + len(a), c0 + len(b))))  # rows in this column tile
            key[diag - r0, diag - c0] = never  # a sample is not its own neighbour
            best = key.topk(min(k, len(b)), dim=1, largest=False).values  # (R, <= k), sorted, nearest first
            top = best if top is None else torch.cat([top, best], 1)  # (R, <= 2k)
            top = top.topk(min(k, top.shape[1]), dim=1, largest=False).values
        graph[r0:r0 + len(a)] = (top % n).numpy()
        bar.update(len(a))
    return graph


def _approximate(x: np.ndarray, k: int, grid: bool, chunk: int, bar) -> np.ndarray:
    """faiss HNSW over 8-bit codes: N x D bytes of index, like the uint8 data, instead of float32's 4 N x D."""
    try:
        import faiss
    except ImportError:
        raise LatentAtlasError("the approximate neighbour graph needs faiss: "
                               "pip install 'latentatlas[graph]'") from None
    n, d = x.shape
    index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit_direct, _HNSW["M"])  # stores levels 0..255 as-is
    index.hnsw.efConstruction = _HNSW["efConstruction"]
    rows = max(1, _SCAN_BYTES // (4 * d))
    for lo in range(0, n, rows):
        index.add(_levels(x[lo:lo + rows]))
        bar.update(min(rows, n - lo))
    index.hnsw.efSearch = max(_HNSW["efSearch"], k + 1)
    graph = np.empty((n, k), np.int64)  # (N, k)
    for lo in range(0, n, rows):
        _, found = index.search(_levels(x[lo:lo + rows]), k + 1)  # (R, k + 1), usually the sample itself first
        is_self = found == np.arange(lo, lo + len(found))[:, None]
        is_self[~is_self.any(1), -1] = True  # self not found (duplicates crowd it out): drop the farthest instead
        graph[lo:lo + len(found)] = found[~is_self].reshape(len(found), k)
        bar.update(len(found))
    return graph


def _levels(block: np.ndarray) -> np.ndarray:
    """(R, D) float32 pixel levels 0..255, the units of the 8-bit index (floats are rounded to the nearest level)."""
    if block.dtype == np.uint8:
        return block.astype(np.float32)
    return np.rint(np.asarray(block, dtype=np.float32) * 255)


def _read(path: Path, n: int, k: int) -> np.ndarray | None:
    """A cached graph, or None when there is none or it is not a valid (n, k) graph (truncated, corrupt)."""
    if not path.is_file():
        return None
    try:
        graph = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if (graph.shape != (n, k) or graph.dtype != np.int64 or graph.min() < 0 or graph.max() >= n
            or (graph == np.arange(n)[:, None]).any()):
        return None
    return graph


def _save(tmp: str, graph: np.ndarray) -> None:
    with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the temp file's name
        np.save(f, graph, allow_pickle=False)
