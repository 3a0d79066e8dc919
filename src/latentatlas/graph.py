"""The k nearest neighbours of every training sample in input space: the graph a neighbour-embedding loss pulls along.

Exact up to ``APPROXIMATE_ABOVE`` samples, in tiles of rows against columns with a running top-k, so memory stays
bounded; approximate above it with faiss' HNSW index (the ``graph`` extra). Either way the graph is cached on disk
(``graph_cache``), keyed by a hash of the data's bytes, k, the method and ``FORMAT``.

The exact method's matrix products of 8-bit levels are exact on either of two paths, and the faster one on this CPU
is chosen by timing a tile of each once per process (``PRODUCTS``): int8 x int8 -> int32 runs about 3x float32's
speed where VNNI or AMX computes it, and about 20x slower where they do not (AVX2-only CPUs, most laptops).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ._guard import sha256
from ._io import atomic_write, atomic_write_json
from .errors import LatentAtlasError
from .graph_cache import _read, _record, _save
from .progress import progress as progress_bar
from .progress import say

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
# The exact paths for 8-bit levels, centred to -128..127. int8: torch._int_mm into int32 (sums below 2**31 up to
# 131,071 features). float32: every partial sum of at most FLOAT32_BLOCK products of centred levels is a whole number
# below 2**24 (1,024 * 128**2), which float32 holds exactly in any order of summation, so wider samples are split into
# blocks of features whose float32 products are summed in float64 (exact below 2**53).
PRODUCTS = ("int8", "float32")
FLOAT32_BLOCK = 1024
_TIMED_ABOVE = 2e10  # multiply-adds of a whole graph above which timing both paths (~0.1-0.3 s once) pays
_timed: dict[tuple[str, int], float] = {}  # (path, features) -> seconds per pair of a tile, once per process


def knn_graph(x, k, *, method: str = "auto", cache_dir=None, progress: bool | None = None,
              chunk: int = CHUNK, products: str = "auto") -> np.ndarray:
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
        None: a line saying what is computed and how long it should take, then a bar on a terminal or a line every
        few seconds elsewhere; True: the line and a bar; False: silent.
    chunk : int
        Rows per tile of the exact method (tiles are chunk x 8 chunk); only memory and speed depend on it.
    products : {"auto", "int8", "float32"}
        How the exact method multiplies 8-bit levels; both are exact, so only speed depends on it. ``auto`` times a
        tile of each once per process (for large graphs; small ones take float32).

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
    if products not in ("auto", *PRODUCTS):
        raise LatentAtlasError(f"unknown products {products!r}: choose auto, {' or '.join(PRODUCTS)}")
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
        source = {"data": digest, "samples": n, "k": k, "method": tag, "format": FORMAT}
        graph = _read(path, source, progress)
        if graph is not None:
            return graph
    if method == "exact":
        route, estimate = _plan(x.shape, grid, products)
        what = f"exact, {route} products"
        compute = lambda bar: _exact(x, k, grid, chunk, bar, route)  # noqa: E731
        passes = 1
    else:
        what, estimate = "approximate, faiss HNSW", n * 3e-4  # ~0.15 ms a sample for each of two passes
        compute = lambda bar: _approximate(x, k, grid, chunk, bar)  # noqa: E731
        passes = 2  # add, then search
    if progress is not False:
        say(f"neighbour graph: {k} nearest of {n:,} samples x {x.shape[1]:,} features ({what}); "
            f"about {_duration(estimate)}")
    with progress_bar(passes * n, f"{k}-NN graph", unit="sample", show=progress) as bar:
        graph = compute(bar)
    if path is not None:
        try:
            # A cache entry is named by its data's hash and rebuilt at will: whatever holds its name is replaced.
            atomic_write(path, lambda tmp: _save(tmp, graph), overwrite=True, ledger=False)
            atomic_write_json(_record(path), {**source, "sha256": sha256(path)}, overwrite=True,
                              ledger=False)  # last: what it was built from, and the graph's hash
        except (OSError, LatentAtlasError) as e:  # a graph that took minutes is still returned when not kept
            warnings.warn(f"the neighbour graph was not cached in {path.parent}: {e}", stacklevel=2)
    return graph


def _scan(x: np.ndarray, progress) -> tuple[str, bool]:
    """One sequential pass: the content hash, the pixel check and whether the data are 8-bit levels."""
    from .data import check_pixels  # lazily, like cache_dir
    h = hashlib.blake2b(f"{x.dtype.str}{x.shape}".encode(), digest_size=16)
    rows = max(1, _SCAN_BYTES // x[0].nbytes)
    grid = True
    with progress_bar(len(x), "hashing", unit="sample", show=progress) as bar:
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


def _exact(x: np.ndarray, k: int, grid: bool, chunk: int, bar, path: str = "float32") -> np.ndarray:
    """Row tiles against column tiles, keeping each row's k smallest keys (distance, then index) as it goes."""
    n, d = x.shape
    cols = max(chunk, min(8 * chunk, _SCAN_BYTES // (8 * d)))  # narrower column tiles for wide samples
    scale = _scale(d, n, grid)
    products = _Products(path if grid else "float64", d, scale)
    keys = torch.empty(chunk * cols, dtype=torch.int64)  # one keys tile, reused (see _nearest)
    base = torch.empty(n, dtype=torch.int64)  # (N,) round(|b|^2 * scale) * n + index: a key's column part
    for lo in range(0, n, cols):
        t = _tile(x, lo, cols, grid).to(torch.float64)
        base[lo:lo + len(t)] = torch.round((t * t).sum(1) * scale).to(torch.int64) * n + torch.arange(lo, lo + len(t))
    graph = np.empty((n, k), np.int64)  # (N, k)
    with _full_float32_precision():
        for r0 in range(0, n, chunk):
            a = products.input(_tile(x, r0, chunk, grid))  # (R, D)
            top = None
            for c0 in range(0, n, cols):
                b = products.input(_tile(x, c0, cols, grid))  # (C, D): read again for each row tile: bounded memory
                best = _nearest(a, b, base[c0:c0 + len(b)], r0, c0, k, n, products, keys)  # (R, <= k)
                top = best if top is None else torch.cat([top, best], 1)  # (R, <= 2k)
                top = top.topk(min(k, top.shape[1]), dim=1, largest=False).values
            graph[r0:r0 + len(a)] = (top % n).numpy()
            bar.update(len(a))
    return graph


def _nearest(a, b, base, r0: int, c0: int, k: int, n: int, products: _Products, keys: torch.Tensor) -> torch.Tensor:
    """The k smallest keys of rows a (from r0) against columns b (from c0), sorted: (R, <= k) int64.

    A row's order needs only |b|^2 - 2 a.b (its own |a|^2 is common to the row). A key is that * n + index, so one
    int64 order is "nearer, then lower index" and ties resolve without a sort. ``keys`` is scratch of at least R x C:
    a fresh 60 MB tile per step costs more in page faults than the arithmetic on it.
    """
    key = keys[:len(a) * len(b)].view(len(a), len(b))  # (R, C)
    products(a, b, out=key)  # whole numbers: a.b of 8-bit levels, or round(a.b * scale)
    torch.add(base, key, alpha=-2 * n, out=key)
    diag = torch.arange(max(r0, c0), max(r0, c0, min(r0 + len(a), c0 + len(b))))  # samples in both tiles
    key[diag - r0, diag - c0] = torch.iinfo(torch.int64).max  # a sample is not its own neighbour
    return key.topk(min(k, len(b)), dim=1, largest=False).values


def _scale(d: int, n: int, grid: bool) -> float:
    """1 for 8-bit levels (whole numbers already); for other floats (|score| <= 3d) the finest 2**-q that keeps
    every key within int64 (~1e-10 for 784 x 100,000)."""
    return 1.0 if grid else 2.0 ** int(np.floor(np.log2(2.0**62 / (3 * (d + 1) * n))))


class _Products:
    """a.b for every row pair of two tiles, as whole numbers written into an int64 tile, on one exact path."""

    def __init__(self, path: str, d: int, scale: float = 1.0):
        self.path, self.d, self.scale = path, d, scale
        self._buffers: dict[torch.dtype, torch.Tensor] = {}  # reused from tile to tile

    def input(self, t: torch.Tensor) -> torch.Tensor:
        """A tile (R, D) in the path's input type, converted once per tile."""
        return t if self.path == "int8" else t.to(getattr(torch, self.path))

    def __call__(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> None:
        if self.path == "int8":
            g = self._buffer(out.shape, torch.int32)
            torch._int_mm(a, b.T, out=g)
        elif self.path == "float64":
            g = self._buffer(out.shape, torch.float64)
            torch.mm(a, b.T, out=g)
            g.mul_(self.scale).round_()
        elif self.d <= FLOAT32_BLOCK:
            g = self._buffer(out.shape, torch.float32)
            torch.mm(a, b.T, out=g)  # whole numbers below 2**24: exact
        else:
            part, g = self._buffer(out.shape, torch.float32), self._buffer(out.shape, torch.float64).zero_()
            for lo in range(0, self.d, FLOAT32_BLOCK):  # each block's sums exact in float32, their total in float64
                torch.mm(a[:, lo:lo + FLOAT32_BLOCK], b[:, lo:lo + FLOAT32_BLOCK].T, out=part)
                g += part
        out.copy_(g)

    def _buffer(self, shape, dtype) -> torch.Tensor:
        size = shape[0] * shape[1]
        buf = self._buffers.get(dtype)
        if buf is None or buf.numel() < size:
            buf = self._buffers[dtype] = torch.empty(size, dtype=dtype)
        return buf[:size].view(shape)


def _int8_possible(d: int) -> bool:
    # Not below 8 features: oneDNN skips a size-1 inner dimension (pytorch#195066); not past 131,071, where int32
    # sums of 128**2 products could overflow.
    return hasattr(torch, "_int_mm") and 8 <= d < 2**31 // 128**2


@functools.cache
def _int8_exact(d: int) -> bool:
    """Whether this CPU's int8 products are exact at width d, checked once per process against float32's.

    Without VNNI, oneDNN's AVX2 int8 kernel adds pairs of products in saturating 16-bit arithmetic (vpmaddubsw),
    so levels near the extremes come out wrong (seen under ONEDNN_MAX_CPU_ISA=AVX2): int8 is then never used.
    """
    levels = torch.randint(-128, 128, (512, d), dtype=torch.int8, generator=torch.Generator().manual_seed(1))
    levels[0], levels[1], levels[2, ::2], levels[3, 1::2] = -128, 127, -128, 127  # the largest sums there are
    got, want = (torch.empty(64, 512, dtype=torch.int64) for _ in range(2))
    with _full_float32_precision():
        _Products("int8", d)(levels[:64], levels, out=got)
        _Products("float32", d)(levels[:64].float(), levels.float(), out=want)
    return torch.equal(got, want)


def _plan(shape: tuple[int, int], grid: bool, products: str) -> tuple[str, float]:
    """The product path for the exact method and an estimate of the whole graph's seconds.

    Large graphs time one tile of each candidate (products, keys and top-k, as _exact runs them) once per process
    and take the fastest; small ones take float32, whose speed is never far off, without paying for the timing.
    """
    n, d = shape
    if not grid:
        candidates = ["float64"]
    elif products != "auto":
        if products == "int8" and not _int8_possible(d):
            raise LatentAtlasError(f"int8 products need 8 to 131,071 features, not {d}: use products='float32'")
        if products == "int8" and not _int8_exact(d):
            raise LatentAtlasError("int8 products are not exact on this CPU (its int8 kernel saturates without "
                                   "VNNI): use products='float32'")
        candidates = [products]
    elif n * n * d > _TIMED_ABOVE and _int8_possible(d) and _int8_exact(d):
        candidates = list(PRODUCTS)
    else:
        candidates = ["float32"]
    per_pair = {path: _seconds_per_pair(path, d) for path in candidates} if n * n * d > _TIMED_ABOVE else {}
    path = min(per_pair, key=per_pair.get) if per_pair else candidates[0]
    return path, n * n * per_pair.get(path, d * 2e-11)  # untimed: ~50 G multiply-adds a second


def _seconds_per_pair(path: str, d: int) -> float:
    """Seconds per (row, column) pair of one 256 x 2,048 tile on this path, timed once per process and width."""
    if (path, d) not in _timed:
        rng = torch.Generator().manual_seed(0)
        levels = torch.randint(-128, 128, (2048, d), dtype=torch.int8, generator=rng)
        products = _Products(path, d)
        a, b = products.input(levels[:256]), products.input(levels)
        keys = torch.empty(256 * 2048, dtype=torch.int64)
        base = torch.zeros(2048, dtype=torch.int64)
        with _full_float32_precision():
            _nearest(a[:16], b[:64], base[:64], 0, 0, 15, 2048, products, keys)  # first call: set-up, not timed
            t0 = time.perf_counter()
            _nearest(a, b, base, 0, 0, 15, 2048, products, keys)
            _timed[(path, d)] = (time.perf_counter() - t0) / (256 * 2048)
    return _timed[(path, d)]


@contextlib.contextmanager
def _full_float32_precision():
    """float32 products in float32 arithmetic: "medium" / "high" would let oneDNN round the inputs to bf16 / tf32."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _duration(seconds: float) -> str:
    if seconds < 2:
        return "a second"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


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
