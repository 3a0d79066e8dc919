"""The neighbour-embedding term: its graph, its batches, its loss, and that it separates what reconstruction mixes."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.data import Dataset
from latentatlas.geometries import get_geometry
from latentatlas.losses import Batch
from latentatlas.losses.neighbours import NeighbourBatches, NeighbourEmbedding, symmetrised
from latentatlas.metrics import encode, knn_accuracy
from latentatlas.run_training import build_trainer, resolve_runtime


@pytest.fixture(autouse=True)
def graph_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTATLAS_DATA", str(tmp_path / "cache"))  # graphs are cached under the data cache


def two_clusters(n: int, seed: int):
    """Two classes on one 2-D sheet of 14 high-variance pixels, told apart only by 2 low-variance pixels: a 2-D
    autoencoder spends its latent on the sheet and mixes them; the pixel-space kNN graph never mixes them."""
    rng = np.random.default_rng(seed)
    uv = rng.uniform(0, 1, (n, 2))
    sheet = 0.5 + 0.35 * (uv - 0.5) @ np.random.default_rng(99).uniform(-1, 1, (2, 14))
    y = rng.integers(0, 2, n)
    tell = np.where(y[:, None] == 1, 0.6, 0.4) + rng.normal(0, 0.01, (n, 2))
    return np.clip(np.concatenate([sheet, tell], 1), 0, 1).astype(np.float32), y


def test_the_term_separates_clusters_that_reconstruction_mixes():
    xtr, ytr = two_clusters(800, 0)
    xte, yte = two_clusters(200, 1)
    accuracy = {}
    for weight in (0.0, 1.0):
        cfg = resolve_runtime(RunConfig(preset=None, hidden_sizes=(32,), geometry="euclidean", latent_dim=2,
                                        epochs=60, lr=0.01, ne_weight=weight, device="cpu", precision="fp32"))
        trainer = build_trainer(cfg, xtr, progress=False)
        trainer.fit(xtr)
        accuracy[weight] = knn_accuracy(encode(trainer.model, xtr), ytr, encode(trainer.model, xte), yte, 5)
    assert accuracy[0.0] < 0.75 and accuracy[1.0] > 0.95, accuracy


def test_symmetrised_graph_is_the_union_of_both_directions():
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    rowptr, cols = symmetrised(neighbours)
    edges = {(i, int(j)) for i in range(4) for j in cols[rowptr[i]:rowptr[i + 1]]}
    expected = {(i, int(j)) for i in range(4) for j in neighbours[i]} | {(int(j), i) for i in range(4) for j in neighbours[i]}
    assert edges == expected and all(i != j for i, j in edges)


def test_batches_hold_seeds_with_their_neighbours_and_repeat_with_the_generator():
    rng = np.random.default_rng(0)
    neighbours = np.stack([rng.choice([j for j in range(100) if j != i], 5, replace=False) for i in range(100)])
    rowptr, cols = symmetrised(neighbours)
    sampler = NeighbourBatches(rowptr, cols, batch_size=32)
    batches = sampler(100, torch.Generator().manual_seed(3))
    assert len(batches) == sampler.n_batches(100) == 4 and all(len(b) == 32 for b in batches)
    seeds = torch.cat([b[:16] for b in batches])
    assert len(set(seeds.tolist())) == 64  # a permutation's slice: no seed twice in an epoch
    for b in batches:
        for s, t in zip(b[:16].tolist(), b[16:].tolist()):
            assert t in cols[rowptr[s]:rowptr[s + 1]].tolist()  # each seed is followed by one of its neighbours
    again = sampler(100, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_the_loss_is_infonce_over_the_edges_in_the_batch():
    neighbours = np.array([[1], [0], [3], [2]])  # two pairs: 0-1 and 2-3
    term = NeighbourEmbedding(neighbours, get_geometry("euclidean", 2).log_similarity)
    z = torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0], [3.0, 1.0]])
    index = torch.tensor([0, 1, 2, 3])
    value = term(Batch(torch.zeros(4, 1), index, 0), type("Out", (), {"z": z})())
    q = 1 / (1 + torch.cdist(z, z) ** 2)
    expected = []
    for i, j in ((0, 1), (1, 0), (2, 3), (3, 2)):
        others = [k for k in range(4) if k != i]
        expected.append(-torch.log(q[i, j]) + torch.log(q[i, others].sum()))
    torch.testing.assert_close(value, torch.stack(expected).mean())


def test_the_sphere_brings_its_own_kernel():
    z = torch.nn.functional.normalize(torch.randn(6, 3, dtype=torch.float64), dim=1)
    lq = get_geometry("sphere", 3).log_similarity(z)
    cos = z @ z.T
    torch.testing.assert_close(lq, -torch.log1p(100 * (2 - 2 * cos)), atol=1e-5, rtol=0)


def test_the_test_loss_leaves_the_term_out(small):
    cfg = RunConfig(preset="shallow-2d", ne_weight=1.0, ne_k=5, epochs=1).resolved()
    trainer = build_trainer(resolve_runtime(cfg), small.flat("train")[0][:300], progress=False)
    history = trainer.fit(small.flat("train")[0][:300], small.flat("test")[0][:50])
    assert set(history[0]["terms"]["train"]) == {"reconstruction", "neighbours"}
    assert set(history[0]["terms"]["test"]) == {"reconstruction"}


@pytest.mark.parametrize("args, message", [
    (["--ne-weight", "-1"], "ne_weight=-1.0 is out of range: it must be a number >= 0"),
    (["--ne-weight", "1", "--ne-k", "0"], "ne_k=0 is out of range"),
    (["--ne-weight", "1", "--ne-k", "1437", "--data", "digits"], "ne_k=1437 must be smaller than the number of training samples (1437)"),
])
def test_bad_settings_are_refused_in_one_line(tmp_path, args, message):
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--epochs", "1", *args, "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and r.output.startswith(f"error: {message}") and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_run_with_the_term_resumes_exactly(tmp_path, small):
    from latentatlas.run_training import train_run

    data = Dataset("s", small.x_train[:400], small.y_train[:400], small.x_test[:100], small.y_test[:100])
    cfg = RunConfig(preset="shallow-2d", ne_weight=1.0, ne_k=5, epochs=2)
    straight = train_run(cfg, tmp_path / "a", dataset=data, plot=False, progress=False)
    train_run(RunConfig(preset="shallow-2d", ne_weight=1.0, ne_k=5, epochs=1), tmp_path / "b", dataset=data,
              plot=False, progress=False)
    (tmp_path / "b" / "manifest.json").unlink()  # as if killed after epoch 1
    resumed = train_run(cfg, tmp_path / "b", dataset=data, plot=False, progress=False, resume=True)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


# ---- seeing what a map keeps ------------------------------------------------------------------------------

def _ranks(d):
    """ranks[i, j]: 1 for i's nearest other point, 2 for the next, ..."""
    order = np.argsort(d + np.diag(np.full(len(d), np.inf)), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, len(d) + 1)[None].repeat(len(d), 0), axis=1)
    return ranks


def test_continuity_and_preservation_against_their_definitions():
    """Continuity (Venna & Kaski 2006): 1 - 2 / (n k (2n - 3k - 1)) sum_i sum_{j in U_k(i)} (r_map(i, j) - k),
    U_k(i) the input-space neighbours of i missing from its k map neighbours; preservation: |N_x(i) & N_z(i)| / k."""
    from latentatlas.metrics import neighbourhood_preservation
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(4)
    x = rng.random((120, 6))
    z = x[:, :2] + 0.05 * rng.normal(size=(120, 2))
    k, n = 5, 120
    rx = _ranks(np.linalg.norm(x[:, None] - x[None], axis=-1))
    rz = _ranks(np.linalg.norm(z[:, None] - z[None], axis=-1))
    penalty = sum(rz[i, j] - k for i in range(n) for j in range(n) if rx[i, j] <= k and rz[i, j] > k)
    continuity = 1 - 2 / (n * k * (2 * n - 3 * k - 1)) * penalty
    assert trustworthiness(z, x, n_neighbors=k) == pytest.approx(continuity)  # what metrics.evaluate computes
    kept = [np.sum((rx[i] <= k) & (rz[i] <= k)) / k for i in range(n)]
    np.testing.assert_allclose(neighbourhood_preservation(x.astype(np.float32), z, k), kept)


def test_runs_report_continuity(small):
    from latentatlas.metrics import evaluate

    cfg = resolve_runtime(RunConfig(preset="shallow-2d", epochs=1))
    trainer = build_trainer(cfg, small.flat("train")[0], progress=False)
    trainer.fit(small.flat("train")[0])
    m = evaluate(trainer.model, small)
    assert 0.5 < m["continuity"] <= 1 and 0.5 < m["trustworthiness"] <= 1


def test_the_kernel_is_computed_in_fp32_under_bf16_autocast():
    """bf16's 8 bits of mantissa cancel |a|^2 + |b|^2 - 2 a.b to noise for points tens of units apart (log q off
    by about 3 on a plane's map): the term computes its kernel in fp32 whatever the trainer's precision."""
    rng = np.random.default_rng(0)
    neighbours = np.stack([rng.choice([j for j in range(64) if j != i], 5, replace=False) for i in range(64)])
    term = NeighbourEmbedding(neighbours, get_geometry("euclidean", 2).log_similarity)
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 20
    out = type("Out", (), {"z": z})()
    batch = Batch(torch.zeros(64, 1), torch.arange(64), 0)
    exact = term(batch, type("Out", (), {"z": z.double()})())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = term(batch, out)
    assert abs(under_autocast.item() - exact.item()) < 1e-4
