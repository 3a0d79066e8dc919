"""The free layout and its refinement (latentatlas.layout) on tiny synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from latentatlas.errors import LatentAtlasError
from latentatlas.geometries import get_geometry
from latentatlas.layout import layout, objective, refine

SPACES = [("euclidean", 2), ("sphere", 3)]


def two_clusters(n_per: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs 20 standard deviations apart in R^10, and their labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n_per, 10))
    x[n_per:, 0] += 20
    return x, np.repeat([0, 1], n_per)


def knn(reference: np.ndarray, query: np.ndarray | None = None, k: int = 5) -> np.ndarray:
    """k nearest reference rows of each query row (of each other reference row when query is None)."""
    nn = NearestNeighbors(n_neighbors=k + (query is None)).fit(reference)
    idx = nn.kneighbors(reference if query is None else query)[1]
    return idx[:, 1:] if query is None else idx


@pytest.fixture(scope="module", params=SPACES, ids=[s[0] for s in SPACES])
def fitted(request):
    geometry = get_geometry(*request.param)
    x, y = two_clusters()
    coords = layout(knn(x), geometry, steps=150, seed=0)
    return geometry, x, y, coords


@pytest.mark.parametrize("space", SPACES, ids=[s[0] for s in SPACES])
def test_objective_gradient_matches_finite_differences(space):
    geometry = get_geometry(*space).double()
    z = torch.randn(6, geometry.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    edges, pushed = (torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 4, 5])), torch.tensor([0, 1, 2, 3])
    others = torch.tensor([0, 2, 5, 3, 1])
    assert torch.autograd.gradcheck(lambda p: objective(p, edges, pushed, others, geometry, 3.0),
                                    (z.requires_grad_(True),))


def test_layout_separates_two_clusters(fitted):
    geometry, _, y, coords = fitted
    assert coords.shape == (len(y), geometry.dim) and coords.dtype == np.float32
    # Every point's nearest map neighbours are of its own cluster, and the clusters lie apart from each other.
    assert (y[knn(coords)] == y[:, None]).all()
    a, b = coords[y == 0], coords[y == 1]
    between = np.linalg.norm(a.mean(0) - b.mean(0))
    within = max(np.linalg.norm(a - a.mean(0), axis=1).mean(), np.linalg.norm(b - b.mean(0), axis=1).mean())
    assert between > 2 * within


def test_refined_new_points_land_in_their_cluster(fitted):
    geometry, x, y, coords = fitted
    new, new_y = two_clusters(n_per=10, seed=1)
    placed = refine(knn(x, new), coords, geometry, steps=50)
    assert placed.shape == (20, geometry.dim)
    assert (y[knn(coords, placed, k=1)[:, 0]] == new_y).all()


def test_a_refined_training_point_stays_near_its_own_position(fitted):
    geometry, x, _, coords = fitted
    placed = refine(knn(x, x, k=6), coords, geometry, steps=50)  # a point's own index is among its neighbours
    spread = np.linalg.norm(coords - coords.mean(0), axis=1).mean()
    assert np.median(np.linalg.norm(placed - coords, axis=1)) < 0.2 * spread


def test_sphere_points_have_unit_norm():
    geometry = get_geometry("sphere", 3)
    x, _ = two_clusters(n_per=15)
    coords = layout(knn(x), geometry, steps=20, seed=0)
    placed = refine(knn(x, x[:5]), coords, geometry, steps=10)
    np.testing.assert_allclose(np.linalg.norm(coords, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(placed, axis=1), 1, atol=1e-5)


def test_same_seed_same_layout():
    geometry = get_geometry("euclidean", 2)
    graph = knn(two_clusters(n_per=15)[0])
    a, b = layout(graph, geometry, steps=20, seed=3), layout(graph, geometry, steps=20, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, layout(graph, geometry, steps=20, seed=4))


def test_bad_input_is_refused_in_one_line():
    plane = get_geometry("euclidean", 2)
    graph = knn(two_clusters(n_per=10)[0])
    coords = np.zeros((20, 2), np.float32)
    bad_calls = [
        lambda: layout(graph.astype(float), plane),  # not indices
        lambda: layout(graph[:, 0], plane),  # not (N, k)
        lambda: layout(graph + 20, plane),  # out of range
        lambda: layout(graph, plane, init=np.zeros((20, 3))),  # wrong width
        lambda: layout(graph, plane, init=np.full((20, 2), np.nan)),  # NaN
        lambda: layout(graph, plane, steps=0),
        lambda: refine(graph, np.zeros((20, 3)), plane),  # wrong width
        lambda: refine(graph, np.full((20, 2), np.nan), plane),  # NaN
        lambda: refine(graph, coords[:5], plane),  # indices beyond the training map
        lambda: refine(-graph - 1, coords, plane),  # negative indices
    ]
    for call in bad_calls:
        with pytest.raises(LatentAtlasError) as err:
            call()
        assert "\n" not in str(err.value)


# The decoder and the encoder attached to a map (latentatlas.atlas_map).

def two_image_clusters(n_per: int = 40, seed: int = 0):
    """Two clusters of 16-pixel images in [0, 1] around two different mean images, and map coordinates that keep
    them apart (one cluster around (-5, 0), the other around (5, 0))."""
    rng = np.random.default_rng(seed)
    means = np.stack([np.r_[np.full(8, 0.9), np.full(8, 0.1)], np.r_[np.full(8, 0.1), np.full(8, 0.9)]])
    y = np.repeat([0, 1], n_per)
    x = np.clip(means[y] + rng.normal(scale=0.05, size=(2 * n_per, 16)), 0, 1).astype(np.float32)
    coords = (np.c_[np.where(y == 0, -5.0, 5.0), np.zeros(2 * n_per)] + rng.normal(size=(2 * n_per, 2)))
    return x, coords.astype(np.float32), y, means.astype(np.float32)


def test_decoder_reconstructs_each_cluster_from_its_coordinates():
    from latentatlas.atlas_map import fit_decoder

    torch.set_num_threads(1)
    x, coords, y, means = two_image_clusters()
    decoder = fit_decoder(coords, x, get_geometry("euclidean", 2), epochs=30, seed=0, hidden=(32, 8))
    with torch.no_grad():
        out = torch.sigmoid(decoder(torch.from_numpy(coords))).numpy()  # (80, 16)
    own = ((out - means[y]) ** 2).mean(1)
    other = ((out - means[1 - y]) ** 2).mean(1)
    assert (own < other).all()


@pytest.mark.parametrize("space", SPACES, ids=[s[0] for s in SPACES])
def test_encoder_maps_training_points_near_their_coordinates(space):
    from latentatlas.atlas_map import fit_encoder

    torch.set_num_threads(1)
    geometry = get_geometry(*space)
    x, coords, y, _ = two_image_clusters()
    # On the plane the coordinates as they are; on the sphere the same pattern as a cap around the pole.
    lifted = coords if geometry.dim == 2 else np.c_[coords / 10, np.ones(len(coords), np.float32)]
    coords = geometry(torch.from_numpy(lifted)).mode.numpy()
    encoder = fit_encoder(x, coords, geometry, epochs=200, seed=0, hidden=(32, 8))  # 80 points: a step an epoch
    with torch.no_grad():
        z = encoder(torch.from_numpy(x)).numpy()
    assert z.shape == coords.shape
    assert geometry.contains(torch.from_numpy(z)).all()
    # Each point lands nearer its own cluster's centre than the other's, and about as near its own position as the
    # centre is (the positions' scatter within a cluster is noise independent of the images: nothing to learn).
    centres = np.stack([coords[y == c].mean(0) for c in (0, 1)])
    d = np.linalg.norm(z[:, None] - centres[None], axis=2)  # (80, 2)
    assert (d[np.arange(len(y)), y] < d[np.arange(len(y)), 1 - y]).all()
    spread = np.linalg.norm(coords - centres[y], axis=1).mean()
    assert np.median(np.linalg.norm(z - coords, axis=1)) < 1.5 * spread, (np.median(np.linalg.norm(z - coords, axis=1)), spread)


def test_same_seed_same_decoder_and_encoder():
    from latentatlas.atlas_map import fit_decoder, fit_encoder

    torch.set_num_threads(1)
    x, coords, _, _ = two_image_clusters(n_per=10)
    plane = get_geometry("euclidean", 2)
    for fit in (lambda s: fit_decoder(coords, x, plane, epochs=2, seed=s, hidden=(8, 4)),
                lambda s: fit_encoder(x, coords, plane, epochs=2, seed=s, hidden=(8, 4))):
        a, b, c = fit(3).state_dict(), fit(3).state_dict(), fit(4).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)


def test_atlas_map_refuses_bad_input_in_one_line():
    from latentatlas.atlas_map import fit_decoder, fit_encoder

    x, coords, _, _ = two_image_clusters(n_per=5)
    plane = get_geometry("euclidean", 2)
    for call in (lambda: fit_decoder(coords[:, :1], x, plane), lambda: fit_decoder(coords[:3], x, plane),
                 lambda: fit_encoder(x, np.full_like(coords, np.nan), plane),
                 lambda: fit_decoder(coords, x, plane, epochs=0)):
        with pytest.raises(LatentAtlasError) as err:
            call()
        assert "\n" not in str(err.value)
