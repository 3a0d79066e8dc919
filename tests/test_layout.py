"""The free layout and its refinement (latentatlas.layout) on tiny synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from latentatlas.errors import LatentAtlasError
from latentatlas.geometries import get_geometry
from latentatlas.layout import layout, objective, refine
from latentatlas.layout_engines import ENGINES, check_engine, opentsne_layout
from latentatlas.viz.figures import run_figure_list

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


# Each engine on each space it lays out: latentatlas's own on the plane and the sphere, openTSNE's on the plane.
ENGINE_SPACES = [("latentatlas", "euclidean", 2), ("latentatlas", "sphere", 3), ("opentsne", "euclidean", 2),
                 ("opentsne", "sphere", 3)]


@pytest.fixture(scope="module", params=ENGINE_SPACES, ids=[f"{e}-{s}" for e, s, _ in ENGINE_SPACES])
def fitted(request):
    engine, *space = request.param
    geometry = get_geometry(*space)
    x, y = two_clusters()
    steps = 150 if engine == "latentatlas" else None  # openTSNE's 750 take a second on 80 points
    coords, scale = ENGINES[engine].lay_out(knn(x), geometry, steps=steps, seed=0, init=None, progress=False)
    return geometry.with_kernel_scale(geometry.kernel_scale * scale ** 2), x, y, coords


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


@pytest.mark.parametrize("space", SPACES, ids=[s[0] for s in SPACES])
def test_same_seed_same_layout(space):
    """Bit for bit, with two threads and enough points that torch splits the gathers' backward sums between them
    (its default kernel adds them in whatever order the threads finish: 4,000 points differed by 3e-3)."""
    geometry = get_geometry(*space)
    graph = knn(two_clusters(n_per=1500)[0], k=10)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a, b = (layout(graph, geometry, steps=30, seed=3) for _ in range(2))
        c = layout(graph, geometry, steps=30, seed=4)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's setting is left as it was


def test_a_plane_map_sent_onto_the_sphere_keeps_areas_and_its_kernel():
    """The inverse Lambert equal-area projection: points uniform over a disc land uniform over the sphere (a cap
    holds its share of the area, 2 pi (1 - cos t) / 4 pi), the median at the north pole, and two close points near
    the centre keep their kernel: chord^2 times the returned kernel's scale equals their squared distance."""
    from latentatlas.geometries.sphere import FARTHEST_POLAR_ANGLE

    rng = np.random.default_rng(0)
    r, a = 50 * np.sqrt(rng.uniform(size=100_000)), rng.uniform(0, 2 * np.pi, size=100_000)
    disc = np.column_stack([r * np.cos(a), r * np.sin(a)])
    plane = np.vstack([[0.0, 0.0], [0.3, 0.4], disc, -disc])  # the centre (the median), a point 0.5 from it
    sphere, scale = get_geometry("sphere", 3).from_flat_layout(plane)  # its kernel_scale is 100
    np.testing.assert_allclose(np.linalg.norm(sphere, axis=1), 1, atol=1e-5)
    top = 1 - np.cos(np.radians(FARTHEST_POLAR_ANGLE))  # the disc fills the cap down to its farthest point's angle
    for t in (0.5, 1.0, 2.0, 2.3):
        assert np.mean(sphere[2:, 2] > np.cos(t)) == pytest.approx((1 - np.cos(t)) / top, abs=0.005)
    np.testing.assert_allclose(sphere[0], [0, 0, 1], atol=1e-3)  # the median lands at the pole
    chord2 = np.sum((sphere[1] - sphere[0]) ** 2)
    assert get_geometry("sphere", 3).kernel_scale == 100.0
    assert 100.0 * scale ** 2 * chord2 == pytest.approx(0.5 ** 2, rel=0.01)


def test_opentsne_gives_the_same_map_for_the_same_seed():
    graph, plane = knn(two_clusters(n_per=100)[0], k=10), get_geometry("euclidean", 2)
    a, b = (opentsne_layout(graph, plane, seed=1, steps=200) for _ in range(2))
    np.testing.assert_array_equal(a, b)


def test_an_engine_that_cannot_lay_out_a_space_is_refused_in_one_line(monkeypatch):
    """openTSNE lays out the plane only; a missing package is named with its install line; an unknown engine gets
    the registry's names; a run's config is refused before anything is loaded."""
    import importlib.util

    from latentatlas.config import RunConfig

    sphere, plane = get_geometry("sphere", 3), get_geometry("euclidean", 2)
    graph = knn(two_clusters(n_per=10)[0])
    calls = {"lays out the plane": lambda: opentsne_layout(graph, sphere),
             "not torus in 4": lambda: RunConfig(preset="torus-2", layout="free", layout_engine="opentsne").resolved(),
             "choose one of auto, latentatlas, opentsne": lambda: check_engine("tsne", plane),
             "did you mean 'opentsne'": lambda: RunConfig(preset="atlas-2d", layout_engine="opentnse").resolved()}
    for said, call in calls.items():
        with pytest.raises(LatentAtlasError, match=said.strip()) as err:
            call()
        assert "\n" not in str(err.value)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openTSNE" else real(name, *a))
    with pytest.raises(LatentAtlasError, match="needs openTSNE: pip install openTSNE"):
        RunConfig(preset="atlas-2d", layout_engine="opentsne").resolved()
    assert RunConfig(preset="atlas-2d", layout_engine="latentatlas").resolved().layout_engine == "latentatlas"


@pytest.mark.parametrize("space", SPACES, ids=[s[0] for s in SPACES])
def test_a_joint_layout_trains_its_decoder_beside_the_map(space):
    """reconstruction_weight > 0: the decoder learns the images from the map's coordinates while they are laid out,
    and the map still separates the clusters; 0 leaves the decoder untouched and gives the pure layout's map."""
    geometry = get_geometry(*space)
    x, y = two_clusters()
    images = torch.from_numpy(np.where(y[:, None] == 0, np.eye(2)[0], np.eye(2)[1]).repeat(5, 1)).float()  # (80, 10)
    graph = knn(x)

    def decoded(decoder, coords):  # logits, the decoder seeing the map as the joint layout shows it
        z = torch.from_numpy(coords)
        if geometry.scalable:
            z = (z - z.mean(0)) / z.std()
        with torch.no_grad():
            return decoder(z)

    def bce(decoder, coords):
        return torch.nn.functional.binary_cross_entropy_with_logits(decoded(decoder, coords), images).item()

    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.Linear(geometry.dim, 16), torch.nn.PReLU(), torch.nn.Linear(16, 10))
    before = [p.detach().clone() for p in decoder.parameters()]
    pure = layout(graph, geometry, steps=150, seed=0, decoder=decoder, images=images, reconstruction_weight=0.0)
    assert all(torch.equal(a, b) for a, b in zip(before, decoder.parameters()))
    assert np.array_equal(pure, layout(graph, geometry, steps=150, seed=0))
    untrained = bce(decoder, pure)
    joint = layout(graph, geometry, steps=300, seed=0, decoder=decoder, images=images, reconstruction_weight=1.0)
    assert bce(decoder, joint) < 0.8 * untrained
    assert ((decoded(decoder, joint) > 0) == (images > 0.5)).float().mean() > 0.95  # each point decodes its cluster
    own = knn(joint, k=5)
    assert (y[own] == y[:, None]).mean() > 0.95


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
        lambda: opentsne_layout(graph.astype(float), plane),  # not indices
        lambda: opentsne_layout(graph, plane, init=np.zeros((20, 3))),  # wrong width
        lambda: opentsne_layout(graph, plane, init=np.full((20, 2), np.nan)),  # NaN
        lambda: opentsne_layout(graph, plane, steps=0),
        lambda: layout(graph, plane, reconstruction_weight=1.0),  # joint without a decoder and images
        lambda: layout(graph, plane, reconstruction_weight=-1.0, decoder=torch.nn.Linear(2, 10),
                       images=np.zeros((20, 10))),
        lambda: layout(graph, plane, reconstruction_weight=float("nan"), decoder=torch.nn.Linear(2, 10),
                       images=np.zeros((20, 10))),
        lambda: layout(graph, plane, reconstruction_weight=1.0, decoder=torch.nn.Linear(2, 10),
                       images=np.zeros((19, 10))),  # not one image per point
    ]
    for call in bad_calls:
        with pytest.raises(LatentAtlasError) as err:
            call()
        assert "\n" not in str(err.value)


def test_the_neighbour_index_matches_scikit_learn_in_any_block_size(monkeypatch):
    """The map's index: principal components as scikit-learn's PCA finds them (up to sign), and each new image's
    nearest training images by exact search, the same whatever block the search and the sums take."""
    from sklearn.decomposition import PCA

    from latentatlas import atlas_map

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((300, 40), dtype=np.float32))
    new = torch.from_numpy(rng.random((70, 40), dtype=np.float32))
    mean, components = atlas_map.principal_components(x, 8)
    reference = PCA(8).fit(x.numpy())
    np.testing.assert_allclose(mean, reference.mean_, atol=1e-6)
    np.testing.assert_allclose(np.abs((components.numpy() * reference.components_).sum(1)), 1, atol=1e-4)
    projected = atlas_map.project(x, mean, components)
    placed = atlas_map.PlacedMap(torch.zeros(300, 2), torch.tensor(1.0), mean, components, projected, k=5)
    whole = placed.neighbours(new)
    exact = NearestNeighbors(n_neighbors=5).fit(projected.numpy()).kneighbors(
        atlas_map.project(new, mean, components).numpy())[1]
    assert (whole.numpy() == exact).mean() > 0.99  # float32 ties aside
    monkeypatch.setattr(atlas_map, "BLOCK", 7)
    monkeypatch.setattr(atlas_map, "SEARCH_BYTES", 4 * 300 * 3)  # three new images at a time
    blocked_mean, blocked_components = atlas_map.principal_components(x, 8)
    torch.testing.assert_close(blocked_mean, mean)
    torch.testing.assert_close(blocked_components, components, atol=1e-5, rtol=0)
    torch.testing.assert_close(atlas_map.project(x, mean, components), projected)
    assert (placed.neighbours(new) == whole).float().mean() > 0.99  # a block's products may round differently


# A free-layout run: the map, the decoder and encoder fitted to it, new images placed on it (latentatlas.atlas_map).

@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory, small):
    """atlas-2d on 1,000 images of mnist-5k: a short layout and 3 epochs, enough to check the plumbing."""
    from latentatlas.config import RunConfig
    from latentatlas.run_training import train_run

    cfg = RunConfig(preset="atlas-2d", data="mnist-5k", epochs=3, layout_steps=150, refine_steps=30)
    return train_run(cfg, tmp_path_factory.mktemp("atlas") / "run", dataset=small, plot=False)


def test_a_free_layout_run_places_its_test_images_on_its_map(atlas_run, small):
    from latentatlas.metrics import knn_accuracy
    from latentatlas.runs import load_run

    run = load_run(atlas_run.path)
    assert run.model.map is not None and len(run.model.map.coords) == len(small.y_train)
    lat = run.latents()
    # The training images are where the layout put them; the test images are placed on that map and decoded there.
    assert np.array_equal(lat["z_train"], run.model.map.coords.numpy())
    m = run.metrics
    assert {"knn5", "knn5_encoder", "mse_test"} <= set(m)
    assert m["knn5"] == pytest.approx(knn_accuracy(lat["z_train"], small.y_train, lat["z_test"], small.y_test, 5))
    assert m["knn5"] > 0.7  # 1,000 digits laid out in 150 steps: far above chance (0.1), under the full run's 0.90
    placed = torch.as_tensor(lat["z_test"])
    x_test = torch.as_tensor(small.x_test.reshape(len(small.x_test), -1)).float() / 255
    with torch.inference_mode():
        mse = float((run.model.decode(placed) - x_test).square().mean())
    assert m["mse_test"] == pytest.approx(mse, rel=1e-5)  # decode(transform(x)), not the encoder's reconstruction


def test_a_training_image_placed_again_lands_near_its_own_coordinate(atlas_run, small):
    from latentatlas.runs import load_run

    model = load_run(atlas_run.path).model
    x = torch.as_tensor(small.x_train[:200].reshape(200, -1)).float() / 255
    with torch.inference_mode():
        placed = model.encode(x)
    coords = model.map.coords[:200]
    spacing = torch.cdist(model.map.coords, model.map.coords).topk(2, largest=False).values[:, 1].median()
    assert float((placed - coords).norm(dim=1).median()) < 3 * float(spacing)


def test_the_saved_map_is_the_stored_size_and_the_weights_the_tutorials(atlas_run, small):
    from latentatlas.atlas_map import map_size
    from latentatlas.presets import get_preset
    from latentatlas.runs import load_run

    model = load_run(atlas_run.path).model
    stored = sum(t.numel() * t.element_size() for t in model.map.state_dict().values())
    assert stored == map_size(len(small.y_train), 2, 784)
    assert sum(p.numel() for p in model.parameters()) == get_preset("atlas-2d").n_params()  # deep-2d's networks


def test_a_free_layout_run_without_its_map_is_refused_in_one_line(atlas_run, tmp_path):
    import shutil

    from latentatlas._lock import FolderLock
    from latentatlas.run_folder import WEIGHTS, write_manifest
    from latentatlas.runs import load_run
    from latentatlas.weights import load_weights, save_weights

    copy = tmp_path / "run"
    shutil.copytree(atlas_run.path, copy)
    state = {k: v for k, v in load_weights(copy / WEIGHTS).items() if not k.startswith("map.")}
    with FolderLock(copy):  # the guard writes into a run folder only under its lock
        save_weights(copy / WEIGHTS, state)
        write_manifest(copy)  # re-signed: the manifest proves the files, not that they make a free-layout run
    with pytest.raises(LatentAtlasError) as err:
        load_run(copy)
    assert "\n" not in str(err.value) and "map" in str(err.value)


def test_the_round_trip_comes_back_near_where_it_started(atlas_run):
    """metrics.json's round_trip: a 20 x 20 grid over the map's box, decoded, placed again; the median distance
    back over the map's diameter (the oracle: the farthest pair of training coordinates, by brute force)."""
    from latentatlas.atlas_map import round_trip_points
    from latentatlas.runs import load_run

    run = load_run(atlas_run.path)
    (chart,) = run.model.geometry.charts()
    points, back = round_trip_points(run.model, chart)
    uv = run.model.map.coords
    assert (points.min(0).values > uv.min(0).values).all() and (points.max(0).values < uv.max(0).values).all()
    coords = run.model.map.coords.double()
    diameter = float(torch.cdist(coords, coords).max())
    share = float((back - points).norm(dim=1).median()) / diameter
    assert points.shape == back.shape == (400, 2)
    assert run.metrics["round_trip"] == pytest.approx(share, rel=1e-5)
    assert 0 <= share < 0.2  # a short run; the full runs' figure is in the closing note of issue 25
    assert "round_trip_plane" in [f.name for f in run_figure_list(run, run.dataset())]


def test_old_atlas_configs_stay_neighbour_term_runs():
    """A config.json written before free layouts existed (atlas-2d then meant deep-2d with the neighbour term) reads
    as what it was: no layout, its neighbour term on."""
    from latentatlas.config import RunConfig

    old = RunConfig(preset="atlas-2d").resolved().to_dict()
    old.pop("layout"), old.pop("layout_k"), old.pop("layout_steps"), old.pop("refine_steps")
    old.update(ne_weight=1.0)
    cfg = RunConfig.from_dict(old).resolved()
    assert cfg.layout == "encoder" and cfg.ne_weight == 1.0


def test_auto_lays_out_large_maps_of_the_plane_with_opentsne_and_the_rest_with_latentatlas(tmp_path, small):
    """The measured choice (layout_engines.ENGINES' comment): openTSNE above 16,384 points on the plane, latentatlas's own
    below it and on every other space; a run's config.json names the engine that ran, not "auto"."""
    from latentatlas.config import RunConfig
    from latentatlas.layout_engines import AUTO_OPENTSNE_ABOVE, engine_for
    from latentatlas.run_training import train_run

    plane, sphere = get_geometry("euclidean", 2), get_geometry("sphere", 3)
    assert AUTO_OPENTSNE_ABOVE == 16384
    assert [engine_for("auto", plane, n) for n in (16384, 16385)] == ["latentatlas", "opentsne"]
    assert [engine_for("auto", sphere, n) for n in (16384, 16385)] == ["latentatlas", "opentsne"]
    assert engine_for("auto", get_geometry("torus", 2), 60000) == "latentatlas"
    assert engine_for("latentatlas", plane, 60000) == "latentatlas"
    cfg = RunConfig(preset="atlas-2d", data="mnist-5k", epochs=1, layout_steps=20, refine_steps=5)
    assert cfg.resolved().layout_engine == "auto"
    run = train_run(cfg, tmp_path / "run", dataset=small, plot=False)
    assert run.config.layout_engine == "latentatlas"
    assert '"layout_engine": "latentatlas"' in (tmp_path / "run" / "config.json").read_text()


def test_compare_reuses_an_atlas_run_whose_engine_auto_decided(tmp_path, tiny):
    """config.json names the engine that ran; a rerun of the same command, whose config still says auto, is the
    same run and is reused, not refused as one with other settings."""
    from click.testing import CliRunner

    from latentatlas.cli import main

    args = ["compare", "--presets", "atlas-2d", "--seeds", "1", "--data", str(tiny), "--epochs", "1",
            "--baselines", "", "--out", str(tmp_path / "cmp")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    weights = tmp_path / "cmp" / "atlas-2d" / "seed0" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "training" not in again.output and weights.stat().st_mtime_ns == before


def test_an_opentsne_map_places_and_decodes_like_any_free_layout(tmp_path, small):
    from latentatlas.config import RunConfig
    from latentatlas.metrics import knn_accuracy
    from latentatlas.run_training import train_run

    cfg = RunConfig(preset="atlas-2d", data="mnist-5k", epochs=1, layout_engine="opentsne", layout_steps=300,
                    refine_steps=30)
    run = train_run(cfg, tmp_path / "run", dataset=small, plot=False)
    assert run.config.layout_engine == "opentsne"
    assert run.metrics["knn5"] > 0.7 and run.metrics["knn5"] > run.metrics["knn5_encoder"] - 0.05
    z = run.model.map.coords.numpy()
    assert knn_accuracy(z, small.y_train, z, small.y_train, 5) > 0.8  # the map itself keeps the digits apart


def test_free_layout_configs_from_before_the_engine_setting_read_as_latentatlas_maps():
    """A free-layout run's config.json written before ``layout_engine`` existed was laid out by latentatlas's own
    engine, whatever its preset's engine is now."""
    from latentatlas.config import RunConfig

    for preset in ("atlas-2d", "atlas-s2"):
        old = RunConfig(preset=preset, layout_engine="latentatlas").resolved().to_dict()
        old.pop("layout_engine")
        assert RunConfig.from_dict(old).resolved().layout_engine == "latentatlas"


def test_the_estimator_returns_the_layout_places_new_samples_and_decodes(tmp_path):
    from sklearn.datasets import load_digits

    from latentatlas import Autoencoder

    x = load_digits().data.astype(np.float32) / 16
    ae = Autoencoder(preset="atlas-2d", epochs=2, layout_steps=100, refine_steps=20, random_state=0)
    z = ae.fit_transform(x[:600])
    assert np.array_equal(z, ae.model_.map.coords.numpy())  # the training layout itself, not placed again
    placed = ae.transform(x[600:700])
    assert placed.shape == (100, 2) and np.isfinite(placed).all()
    direct = ae.set_params(placement="encoder").fit(x[:600]).transform(x[600:700])
    assert not np.allclose(direct, placed)
    assert ae.inverse_transform(placed).shape == (100, 64)
    again = Autoencoder.load(ae.save(tmp_path / "ae"))
    np.testing.assert_array_equal(again.transform(x[600:700]), direct)  # its placement setting saved with it


def test_the_report_and_the_explorer_say_how_test_images_were_placed(tmp_path):
    import html

    from latentatlas.atlas_map import PLACED
    from latentatlas.config import RunConfig
    from latentatlas.run_training import train_run
    from latentatlas.runs import load_run
    from latentatlas.viz.explorer import explorer_data
    from latentatlas.viz.report import write_report

    cfg = RunConfig(preset="atlas-2d", data="digits", epochs=2, layout_steps=100, refine_steps=20)
    run = load_run(train_run(cfg, tmp_path / "run", plot=False).path)
    assert explorer_data(run, run.dataset())["summary"][-1] == PLACED["refine"]
    assert html.escape(PLACED["refine"]) in write_report([run.path], tmp_path / "r.html").read_text()
