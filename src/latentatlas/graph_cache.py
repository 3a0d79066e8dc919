"""The on-disk cache of neighbour graphs (``graph.knn_graph`` computes them).

Entries live in the cache folder (by default ``latentatlas.data.cache_dir() / "graphs"``), one ``.npy`` file per
graph named by the data's hash, k, the method and the format (``knn-HASH-kK-METHOD-vFORMAT.npy``). Beside each, a
sidecar record (``.npy.json``, written last) says what it was built from and holds the graph's hash; a graph is read
only when its record matches, and its size and hash are checked before ``np.load`` allocates its memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._guard import sha256
from .progress import say


def _record(path: Path) -> Path:
    """The cache entry's record of what it was built from (written after the graph, with the graph's hash)."""
    return path.with_name(path.name + ".json")


def _read(path: Path, source: dict, progress) -> np.ndarray | None:
    """A cached graph, or None when there is none or it is not the graph of ``source`` (the data's hash, k, method):
    damaged, built from other data, or with a header that claims another shape; the last three with a note."""
    if not path.is_file():
        return None
    n, k = source["samples"], source["k"]
    problem = None
    try:
        record = json.loads(_record(path).read_text()) if _record(path).stat().st_size < 4096 else None
    except (OSError, ValueError, RecursionError):
        record = None
    if not isinstance(record, dict) or {key: record.get(key) for key in source} != source:
        problem = "it was built from other data or settings, or its record is missing"
    elif not 0 < path.stat().st_size - 8 * n * k <= 4096 or record.get("sha256") != sha256(path):
        problem = "it is damaged (its size or hash is not the one recorded)"  # checked before np.load allocates
    else:
        try:
            graph = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            graph = None
        if (graph is None or graph.shape != (n, k) or graph.dtype != np.int64 or graph.min() < 0 or graph.max() >= n
                or (graph == np.arange(n)[:, None]).any()):
            problem = "it is not a valid graph of this data"
        else:
            return graph
    if progress is not False:
        say(f"note: the cached neighbour graph {path.name} is not used and is rebuilt: {problem}")
    return None


def _save(tmp: str, graph: np.ndarray) -> None:
    with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the temp file's name
        np.save(f, graph, allow_pickle=False)
