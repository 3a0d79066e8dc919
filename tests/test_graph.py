"""The neighbour graph against brute force (a full distance matrix, scikit-learn), its cache, and its refusals."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from latentatlas import graph
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError
from latentatlas.graph import knn_graph


def brute(x, k):
    """Oracle: a full distance matrix in exact integers (8-bit levels) or float64, ties to the lower index."""
    x = x.reshape(len(x), -1)
    v = x.astype(np.int64) if x.dtype == np.uint8 else x.astype(np.float64)
    d = np.stack([((v - row) ** 2).sum(1) for row in v])  # (N, N), by differences: no cancellation
    np.fill_diagonal(d, np.iinfo(np.int64).max if d.dtype == np.int64 else np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]  # a stable sort keeps equal distances in index order


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").x_train  # (1437, 8, 8) uint8, 17 grey levels: many exactly tied distances


@pytest.fixture(scope="module")
def digits_10nn(digits):
    return brute(digits, 10)  # its first columns are the graph for a smaller k


@pytest.mark.parametrize("features", [1, 3, 20])
@pytest.mark.parametrize("chunk", [3, 1024])  # 3: many tiles, some ragged
def test_random_data_equals_brute_force(features, chunk):
    rng = np.random.default_rng(features)
    x = rng.integers(0, 256, (100, features), dtype=np.uint8)
    want = brute(x, 6)
    assert np.array_equal(knn_graph(x, 6, cache_dir=False, chunk=chunk), want)
    if features >= 8 and graph._int8_exact(features):  # int8 products need 8 features, and a CPU that sums exactly
        assert np.array_equal(knn_graph(x, 6, cache_dir=False, chunk=chunk, products="int8"), want)
    # floats on the 1/255 grid are the same pixels, so the same exact integer distances and ties
    assert np.array_equal(knn_graph(x / np.float32(255), 6, cache_dir=False, chunk=chunk), want)
    off_grid = rng.random((100, features), dtype=np.float32)
    assert np.array_equal(knn_graph(off_grid, 6, cache_dir=False, chunk=chunk), brute(off_grid, 6))


def test_digits_equal_brute_force_and_scikit_learn(digits, digits_10nn):
    want = digits_10nn
    got = knn_graph(digits, 10, cache_dir=False)
    assert got.shape == (1437, 10) and got.dtype == np.int64
    assert np.array_equal(got, want)
    # several row and column tiles (100 x 800), and float pixels, give the same graph
    assert np.array_equal(knn_graph(digits, 10, cache_dir=False, chunk=100), want)
    assert np.array_equal(knn_graph(digits.astype(np.float32) / 255, 10, cache_dir=False, chunk=100), want)
    # an independent oracle: scikit-learn's distances (it breaks ties its own way, so only distances are compared)
    flat = digits.reshape(len(digits), -1) / 255.0
    dist, _ = NearestNeighbors(algorithm="brute").fit(flat).kneighbors(n_neighbors=10)
    np.testing.assert_allclose(np.linalg.norm(flat[got] - flat[:, None], axis=-1), dist, atol=1e-9)


@pytest.mark.parametrize("products", graph.PRODUCTS)
@pytest.mark.parametrize("features", [graph.FLOAT32_BLOCK, graph.FLOAT32_BLOCK + 1, 2500])
def test_each_product_path_is_exact_at_the_extremes_of_its_range(products, features):
    """Pixels at 0 and 255 make the largest sums of centred levels (1,024 * 128**2 = 2**24 for one float32 block);
    rows one level apart make near ties; past one block, float32 products are summed over blocks of features."""
    rng = np.random.default_rng(features)
    x = np.where(rng.random((60, features)) < 0.5, 0, 255).astype(np.uint8)
    x[30:] = x[:30]
    x[30:, rng.integers(0, features, 30)] ^= 1  # each copy one level off its original somewhere
    x[5] = 0
    x[6] = 255
    want = brute(x, 5)
    if products == "int8" and not graph._int8_exact(features):  # refused where the CPU's int8 kernel saturates
        with pytest.raises(LatentAtlasError, match="int8 products are not exact on this CPU"):
            knn_graph(x, 5, cache_dir=False, products=products)
        return
    assert np.array_equal(knn_graph(x, 5, cache_dir=False, chunk=16, products=products), want)


def test_an_int8_kernel_that_saturates_is_caught_and_never_chosen(monkeypatch):
    """What oneDNN's AVX2 kernel does without VNNI: pairs of products summed in saturating int16."""
    def saturating(a, bt, out):  # a (R, D) @ bt (D, C)
        products = a.int()[:, None, :] * bt.T.int()[None]  # (R, C, D)
        pairs = products.view(len(a), bt.shape[1], -1, 2).sum(-1)  # (R, C, D / 2)
        out.copy_(pairs.clamp(-2**15, 2**15 - 1).sum(-1))

    import torch

    monkeypatch.setattr(torch, "_int_mm", saturating)
    graph._int8_exact.cache_clear()
    try:
        assert not graph._int8_exact(64)
        monkeypatch.setattr(graph, "_TIMED_ABOVE", 0)
        assert graph._plan((1000, 64), True, "auto")[0] == "float32"
    finally:
        graph._int8_exact.cache_clear()


def test_the_fastest_product_path_is_chosen_by_timing_and_the_choice_is_said(monkeypatch, capsys):
    monkeypatch.setattr(graph, "_TIMED_ABOVE", 0)  # time even this small graph
    monkeypatch.setattr(graph, "_int8_exact", lambda d: True)
    for faster in graph.PRODUCTS:
        timed = {p: (1e-9 if p == faster else 1e-6) for p in graph.PRODUCTS}
        monkeypatch.setattr(graph, "_seconds_per_pair", lambda path, d: timed[path])
        assert graph._plan((1000, 64), True, "auto")[0] == faster
    x = np.random.default_rng(0).integers(0, 256, (300, 64), dtype=np.uint8)
    knn_graph(x, 5, cache_dir=False, progress=False)
    assert capsys.readouterr().err == ""  # progress=False is silent
    knn_graph(x, 5, cache_dir=False)
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith(f"neighbour graph: 5 nearest of 300 samples x 64 features (exact, {faster} products)")
    assert graph._plan((1000, 4), True, "auto")[0] == "float32"  # int8 cannot multiply 4 features
    with pytest.raises(LatentAtlasError, match="int8 products need 8 to 131,071 features, not 4"):
        knn_graph(x[:, :4], 5, cache_dir=False, products="int8")
    with pytest.raises(LatentAtlasError, match="unknown products 'int4': choose auto, int8 or float32"):
        knn_graph(x, 5, cache_dir=False, products="int4")


def test_the_real_timing_runs_and_gives_a_rate():
    for path in graph.PRODUCTS:
        seconds = graph._seconds_per_pair(path, 64)
        assert 0 < seconds < 1e-3  # a pair of 64 features takes nanoseconds, not a millisecond


def test_ties_go_to_the_lower_index_whatever_the_tiles():
    x = np.array([[5], [0], [10], [5], [0], [10], [5]], dtype=np.uint8)
    for chunk in (1, 2, 3, 1024):
        g = knn_graph(x, 4, cache_dir=False, chunk=chunk)
        assert g[0].tolist() == [3, 6, 1, 2]  # two copies of itself, then 0 and 10 at the same distance: 1 before 2
        assert g[1].tolist() == [4, 0, 3, 6]


def test_a_memory_map_is_read_as_it_is(tmp_path, digits, digits_10nn):
    np.save(tmp_path / "x.npy", digits.reshape(len(digits), -1))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")  # read-only
    assert np.array_equal(knn_graph(mapped, 5, cache_dir=tmp_path / "graphs", chunk=300), digits_10nn[:, :5])
    # the same bytes hit the same cache entry, whatever holds them
    assert len(list((tmp_path / "graphs").glob("*.npy"))) == 1
    knn_graph(digits, 5, cache_dir=tmp_path / "graphs")
    assert len(list((tmp_path / "graphs").glob("*.npy"))) == 1


def test_cache_hits_and_misses(tmp_path, monkeypatch, digits):
    computed = []
    exact = graph._exact

    def counting(*args):
        computed.append(args[1])
        return exact(*args)

    monkeypatch.setattr(graph, "_exact", counting)
    first = knn_graph(digits, 5, cache_dir=tmp_path)
    assert computed == [5] and len(list(tmp_path.glob("*.npy"))) == 1
    assert np.array_equal(knn_graph(digits, 5, cache_dir=tmp_path), first)  # read, not computed
    assert computed == [5]
    knn_graph(digits, 6, cache_dir=tmp_path)  # another k
    changed = digits.copy()
    changed[100, 3, 4] ^= 1  # one pixel, one level
    knn_graph(changed, 5, cache_dir=tmp_path)
    assert computed == [5, 6, 5]


def test_a_damaged_cache_file_is_recomputed(tmp_path, monkeypatch, digits):
    digits = digits[:300]
    want = knn_graph(digits, 5, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    computed = []
    exact = graph._exact
    monkeypatch.setattr(graph, "_exact", lambda *args: computed.append(1) or exact(*args))
    for damage in (lambda: path.write_bytes(path.read_bytes()[:1000]),  # truncated
                   lambda: path.write_bytes(b"\x00" * 200),  # not an .npy file
                   lambda: np.save(path, want.astype(np.int32)),  # another dtype
                   lambda: np.save(path, want[:, :4]),  # another shape
                   lambda: np.save(path, want + len(want)),  # indices out of range
                   lambda: np.save(path, np.zeros_like(want))):  # well formed, but sample 0 its own neighbour
        damage()
        assert np.array_equal(knn_graph(digits, 5, cache_dir=tmp_path), want)
    assert len(computed) == 6
    assert np.array_equal(np.load(path), want)  # and the good graph written back


def notes(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("note: ")]


def test_a_foreign_cache_entry_of_the_same_shape_is_rebuilt_with_a_note(tmp_path, digits, capsys):
    """Another data set's graph (and record) put under this data's name, as a copied cache folder can: same shape,
    valid indices, so only the record tells it apart; it is rebuilt, with one line saying why."""
    a, b = digits[:300], digits[300:600]
    want = knn_graph(a, 5, cache_dir=tmp_path, progress=False)
    other = tmp_path / "other"
    knn_graph(b, 5, cache_dir=other, progress=False)
    (mine,), (theirs,) = tmp_path.glob("*.npy"), other.glob("*.npy")
    mine.write_bytes(theirs.read_bytes())
    mine.with_name(mine.name + ".json").write_bytes(theirs.with_name(theirs.name + ".json").read_bytes())
    assert not np.array_equal(np.load(mine), want)
    capsys.readouterr()
    assert np.array_equal(knn_graph(a, 5, cache_dir=tmp_path), want)
    (note,) = notes(capsys.readouterr().err)
    assert f"{mine.name} is not used and is rebuilt: it was built from other data" in note, note
    assert np.array_equal(np.load(mine), want)  # the entry is this data's again


@pytest.mark.parametrize("resigned", [False, True])
def test_a_cache_entry_whose_header_claims_a_huge_array_is_rebuilt_before_it_is_read(tmp_path, digits, capsys,
                                                                                    resigned):
    """A header claiming 2^40 x 5 int64 (40 TiB) over 16 bytes: refused from the file's size against the record
    before np.load allocates, even with the record re-signed over it, and rebuilt with one line."""
    import hashlib
    import json
    import struct
    import tracemalloc

    a = digits[:300]
    want = knn_graph(a, 5, cache_dir=tmp_path, progress=False)
    (path,) = tmp_path.glob("*.npy")
    header = repr({"descr": "<i8", "fortran_order": False, "shape": (2**40, 5)}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(16))
    if resigned:
        record = path.with_name(path.name + ".json")
        signed = {**json.loads(record.read_text()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        record.write_text(json.dumps(signed))
    capsys.readouterr()
    tracemalloc.start()
    graph = knn_graph(a, 5, cache_dir=tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(graph, want) and peak < 64 << 20, peak
    (note,) = notes(capsys.readouterr().err)
    assert "is not used and is rebuilt: it is damaged (its size or hash is not the one recorded)" in note, note


def test_default_cache_folder_and_an_unwritable_one(tmp_path, monkeypatch, digits):
    monkeypatch.setenv("LATENTATLAS_DATA", str(tmp_path / "data"))
    knn_graph(digits[:50], 3)
    assert len(list((tmp_path / "data" / "graphs").glob("knn-*.npy"))) == 1
    (tmp_path / "file").write_text("not a folder")
    with pytest.warns(UserWarning, match="not cached"):
        assert knn_graph(digits[:50], 3, cache_dir=tmp_path / "file").shape == (50, 3)


def test_approximate_recall(mnist5k):
    pytest.importorskip("faiss", reason="the approximate graph needs faiss-cpu (pip install 'latentatlas[graph]')")
    x = mnist5k.x_train  # (4000, 28, 28)
    k = 10
    got = knn_graph(x, k, method="approximate", cache_dir=False)
    n = len(x)
    assert got.shape == (n, k) and got.dtype == np.int64
    assert (got >= 0).all() and (got < n).all() and (got != np.arange(n)[:, None]).all()
    assert all(len(set(row)) == k for row in got.tolist())
    exact = knn_graph(x, k, method="exact", cache_dir=False)
    flat = x.reshape(n, -1).astype(np.int64)

    def dist(idx):
        return np.stack([((flat[row] - flat[i]) ** 2).sum(1) for i, row in enumerate(idx)])  # (N, k)

    # a neighbour no farther than the k-th exact one is a hit (ties may pick other indices)
    recall = (dist(got) <= dist(exact)[:, -1:]).mean()
    assert recall >= 0.9, recall


def test_approximate_without_faiss_says_which_extra(monkeypatch, digits):
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(LatentAtlasError, match=r"pip install 'latentatlas\[graph\]'"):
        knn_graph(digits, 5, method="approximate", cache_dir=False)


@pytest.mark.parametrize(("x", "k", "message"), [
    (np.zeros((5, 3), np.uint8), 5, r"^k=5 must be smaller than the number of samples \(5\)$"),
    (np.zeros((5, 3), np.uint8), 9, r"^k=9 must be smaller than the number of samples \(5\)$"),
    (np.zeros((5, 3), np.uint8), 0, r"^k=0: at least 1"),
    (np.zeros((5, 3), np.uint8), -2, r"^k=-2: at least 1"),
    (np.zeros((5, 3), np.uint8), 2.0, r"^k must be a whole number"),
    (np.zeros((5, 3), np.uint8), True, r"^k must be a whole number"),
    (np.zeros((5, 3), np.uint8), "3", r"^k must be a whole number"),
    (np.zeros((0, 3), np.uint8), 1, r"^no samples"),
    (np.zeros((4, 0), np.uint8), 1, r"^no samples"),
    (np.zeros(5, np.uint8), 1, r"^no samples"),
    (np.full((5, 3), 2.0, np.float32), 1, r"must lie in \[0, 1\]"),
    (np.zeros((5, 3), np.int64), 1, r"give uint8 0..255 or floats in \[0, 1\]"),
])
def test_bad_input_is_refused_in_one_line(x, k, message):
    with pytest.raises(LatentAtlasError, match=message) as e:
        knn_graph(x, k, cache_dir=False)
    assert "\n" not in str(e.value)


def test_unknown_method_is_refused():
    with pytest.raises(LatentAtlasError, match="unknown method 'fast': choose auto, exact or approximate"):
        knn_graph(np.zeros((5, 3), np.uint8), 2, method="fast", cache_dir=False)


def test_redirected_train_says_what_the_graph_is_before_it_starts(tmp_path):
    """Output to a file (no terminal): the graph's one line, with its size and time, comes before any epoch."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "LATENTATLAS_DATA": str(tmp_path / "cache")}  # a cold graph cache
    log = tmp_path / "log"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "latentatlas", "train", "--preset", "ne-2d", "--data", "digits",
                        "--epochs", "1", "--out", str(tmp_path / "run")], stdout=f, stderr=subprocess.STDOUT,
                       env=env, check=True, timeout=300)
    text = log.read_text()
    line = next(line for line in text.splitlines() if line.startswith("neighbour graph:"))
    assert line.startswith("neighbour graph: 15 nearest of 1,437 samples x 64 features (exact, float32 products)")
    assert "about " in line and "\r" not in text  # no progress bar smeared into the file
    assert text.index("neighbour graph:") < text.index("training ne-2d") < text.index("evaluating")
