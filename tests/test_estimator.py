"""The scikit-learn estimator: scikit-learn's own checks, composition, inputs, and safe save/load."""

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from latentatlas import Autoencoder
from latentatlas import estimator as estimator_module
from latentatlas._lock import LOCK
from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError
from latentatlas.run_training import train_run
from latentatlas.runs import load_run
from latentatlas.weights import load_weights

TINY = dict(preset=None, hidden_sizes=(8,), geometry="euclidean", latent_dim=2, epochs=2, batch_size=16,
            random_state=0, device="cpu")


# With scaling="minmax" every scikit-learn check applies and passes; the only one not run is the one scikit-learn
# itself skips without SCIPY_ARRAY_API set (array-API inputs), which it reports with that reason.
@parametrize_with_checks([Autoencoder(**TINY, scaling="minmax"), Autoencoder(**TINY),  # the default, auto
                          Autoencoder(**{**TINY, "geometry": "sphere", "latent_dim": 3}, scaling="minmax")])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


# scaling="pixels" takes uint8 or floats in [0, 1] and refuses anything else by design. These checks
# feed random floats outside [0, 1] (e.g. make_blobs), so they cannot apply; every other check must pass.
OUT_OF_RANGE = "feeds floats outside [0, 1], which scaling='pixels' refuses by design (scaling='minmax' passes it)"
PIXEL_MODE_NOT_APPLICABLE = {name: OUT_OF_RANGE for name in (
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_overwrite_params", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_1sample", "check_fit2d_predict1d",
    "check_fit_check_is_fitted", "check_fit_idempotent", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in", "check_n_features_in_after_fitting",
    "check_pipeline_consistency", "check_readonly_memmap_input", "check_transformer_data_not_an_array",
    "check_transformer_general", "check_transformer_preserve_dtypes")}


@parametrize_with_checks([Autoencoder(**TINY, scaling="pixels")],
                         expected_failed_checks=lambda est: PIXEL_MODE_NOT_APPLICABLE)
def test_scikit_learn_checks_pixel_mode(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return ds.flat("train") + ds.flat("test")


def test_fit_transform_inverse(digits):
    X, y, Xt, yt = digits
    ae = Autoencoder(preset="deep-s2", epochs=3, random_state=0)
    assert ae.fit(X) is ae
    Z = ae.transform(Xt)
    assert Z.shape == (len(Xt), 3) and Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-5)
    R = ae.inverse_transform(Z)
    assert R.shape == Xt.shape and R.min() >= 0 and R.max() <= 1
    assert list(ae.get_feature_names_out()) == ["autoencoder0", "autoencoder1", "autoencoder2"]
    assert -0.7 < ae.score(Xt) < 0
    assert [h["epoch"] for h in ae.history_] == [1, 2, 3]


def test_inputs_uint8_float_tensor_and_images_agree(digits):
    X = digits[0][:200]
    ref = Autoencoder(**TINY).fit(X).transform(X)
    for variant in (X.astype(np.float32) / 255, torch.as_tensor(X), X.reshape(-1, 8, 8)):
        np.testing.assert_allclose(Autoencoder(**TINY).fit(variant).transform(variant), ref, atol=1e-6)


@pytest.mark.parametrize("X,message", [
    (np.full((10, 4), 255.0), r"float pixels range over \[255, 255\].*divide 0..255 data by 255"),
    (np.full((10, 4), np.nan), "NaN"),
    (np.full((10, 4), -0.5), "Negative values"),
])
def test_bad_pixels_refused(X, message):  # with scaling="pixels"; auto takes the first and last as numbers
    with pytest.raises(ValueError, match=message):
        Autoencoder(**TINY, scaling="pixels").fit(X)


def test_bad_parameters_refused_at_fit():
    X = np.zeros((10, 4), np.uint8)
    for params, message in [({"preset": "nope"}, "unknown preset"), ({"lr": -1.0}, "lr=-1.0 is out of range"),
                            ({"scaling": "log"}, "unknown scaling"),
                            ({"geometry": "sphere", "latent_dim": 1}, "not possible for the sphere")]:
        with pytest.raises(LatentAtlasError, match=message):
            Autoencoder(**{**TINY, **params}).fit(X)


def test_wrong_feature_count_at_transform(digits):
    ae = Autoencoder(**TINY).fit(digits[0][:100])
    with pytest.raises(ValueError, match="features"):
        ae.transform(np.zeros((3, 10), np.uint8))
    with pytest.raises(NotFittedError):
        Autoencoder(**TINY).transform(digits[0][:3])


def test_pipeline_clone_and_grid_search(digits):
    X, y, Xt, yt = digits
    pipe = make_pipeline(Autoencoder(preset="deep-3d", epochs=3, random_state=0), LogisticRegression(max_iter=500))
    assert pipe.fit(X, y).score(Xt, yt) > 0.3
    assert clone(pipe).get_params()["autoencoder__epochs"] == 3
    search = GridSearchCV(Autoencoder(**TINY), {"latent_dim": [2, 3]}, cv=2).fit(X[:300])
    assert search.best_params_["latent_dim"] in (2, 3)


def test_save_load_round_trip(tmp_path, digits):
    X = digits[0][:300]
    ae = Autoencoder(**TINY, scaling="minmax").fit(X.astype(np.float32) * 3 - 1)
    ae.save(tmp_path / "m")
    back = Autoencoder.load(tmp_path / "m")
    np.testing.assert_array_equal(back.transform(X * 3.0 - 1), ae.transform(X * 3.0 - 1))
    assert back.get_params() == ae.get_params()
    np.testing.assert_array_equal(back.data_min_, ae.data_min_)


def test_a_run_folder_loads_as_an_estimator(tmp_path, small):
    run = train_run(RunConfig(preset="deep-s2", epochs=1), tmp_path / "r", dataset=small, plot=False, progress=False)
    est = Autoencoder.load(run.path)
    np.testing.assert_array_equal(est.transform(small.flat("test")[0]), run.latents()["z_test"])


def test_readme_pipeline_example_runs(capsys):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"<!-- pipeline example -->\n```python\n(.*?)```", text, re.S).group(1)
    assert "make_pipeline(Autoencoder(" in code and "KNeighborsClassifier()" in code
    exec(compile(code, "README.md", "exec"), {})
    (said,) = capsys.readouterr().out.splitlines()
    accuracy = float(re.fullmatch(r"5-NN accuracy on the sphere's coordinates: (0\.\d{3})", said).group(1))
    assert accuracy > 0.3  # ten digits: chance is 0.1


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"<!-- example -->\n```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # a reader runs it again: it must not trip over its own folder
        exec(compile(code, "README.md", "exec"), {})
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 2 and re.fullmatch(r"1,000 test images on the sphere; reconstruction score -0\.\d{4}", said[1])


CLI_RUN = dict(preset="shallow-2d", epochs=2)  # tiny: 3,923 parameters, two epochs of the 1,437 digits


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A finished run folder made by `latentatlas train ... --seed 0` on digits."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = CliRunner().invoke(main, ["train", "--preset", CLI_RUN["preset"], "--data", "digits", "--epochs",
                                       str(CLI_RUN["epochs"]), "--seed", "0", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_int_random_state_is_the_cli_seed(cli_run):
    X = load_dataset("digits").flat("train")[0]  # exactly the array `train --data digits` trains on (uint8)
    cli_weights = load_weights(cli_run / "model.safetensors")
    for ae in (Autoencoder(**CLI_RUN, random_state=0, device="cpu"), clone(Autoencoder.load(cli_run))):
        state = ae.fit(X).model_.state_dict()
        assert state.keys() == cli_weights.keys()
        for name, tensor in state.items():
            torch.testing.assert_close(tensor, cli_weights[name], rtol=0, atol=0)
    assert Autoencoder.load(cli_run).get_params()["random_state"] == 0


def test_save_refuses_an_existing_folder_and_overwrite_replaces_it_whole(tmp_path, cli_run, digits):
    target = tmp_path / "a1s"
    shutil.copytree(cli_run, target)
    before = sorted(p.name for p in target.iterdir())
    ae = Autoencoder(**TINY).fit(digits[0][:200])
    with pytest.raises(LatentAtlasError, match="already exists.*overwrite=True"):
        ae.save(target)
    assert sorted(p.name for p in target.iterdir()) == before and load_run(target).metrics

    ae.save(target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a1s"]  # no temporary folder left beside it
    # and the lock file it was written under, as a trained run has
    assert sorted(p.name for p in target.iterdir()) == [".latentatlas.lock", "config.json", "estimator.json",
                                                        "history.json", "manifest.json", "model.safetensors",
                                                        "scaling.json"]
    assert load_run(target).metrics == {}  # the CLI run's metrics, latents and figures are gone, not vouched for
    np.testing.assert_array_equal(Autoencoder.load(target).transform(digits[2]), ae.transform(digits[2]))

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(LatentAtlasError, match="exists and is not a run folder: refusing to replace it"):
        ae.save(tmp_path / "notes", overwrite=True)
    (tmp_path / "empty").mkdir()
    ae.save(tmp_path / "empty")  # an empty folder is fine without overwrite


def test_a_failed_save_leaves_the_old_folder_as_it_was(tmp_path, monkeypatch, cli_run, digits):
    target = tmp_path / "run"
    shutil.copytree(cli_run, target)
    def files():  # the lock file aside: it names whoever last took the folder's lock
        return {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file() and p.name != LOCK}

    before = files()

    def crash(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(estimator_module, "write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        Autoencoder(**TINY).fit(digits[0][:200]).save(target, overwrite=True)
    assert files() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_numpy_scalar_hyperparameters(digits):
    X = digits[0][:300]
    params = dict(epochs=np.int64(1), batch_size=np.int64(64), latent_dim=np.int64(2), lr=np.float32(1e-3),
                  hidden_sizes=np.array([32, 8]), random_state=np.int64(0))
    ae = Autoencoder(**{**TINY, **params})
    assert ae.get_params()["epochs"] is params["epochs"]  # __init__ only stores
    cfg = ae.fit(X).config_
    assert (cfg.epochs, cfg.batch_size, cfg.latent_dim, cfg.hidden_sizes, cfg.seed) == (1, 64, 2, (32, 8), 0)
    assert [type(v) for v in (cfg.epochs, cfg.lr, cfg.hidden_sizes[0], cfg.seed)] == [int, float, int, int]
    search = GridSearchCV(Autoencoder(**TINY), {"batch_size": np.array([64, 128])}, cv=2).fit(X)
    assert search.best_params_["batch_size"] in (64, 128)
    for params, message in [({"epochs": True}, "epochs=True"), ({"lr": True}, "lr=True"),
                            ({"random_state": -1}, "random_state=-1"), ({"hidden_sizes": 8}, "hidden_sizes=8")]:
        with pytest.raises(LatentAtlasError, match=message):
            Autoencoder(**{**TINY, **params}).fit(X)


@pytest.mark.parametrize("random_state", [np.random.RandomState(0), np.int64(0)], ids=["RandomState", "int64"])
def test_save_with_a_numpy_random_state(tmp_path, digits, random_state):
    ae = Autoencoder(**{**TINY, "random_state": random_state, "epochs": np.int64(1)}).fit(digits[0][:200])
    back = Autoencoder.load(ae.save(tmp_path / "m"))
    assert back.get_params()["random_state"] == ae.config_.seed  # a RandomState is saved as the seed it drew
    assert back.get_params()["epochs"] == 1
    np.testing.assert_array_equal(back.transform(digits[2]), ae.transform(digits[2]))


def test_fit_leaves_torchs_global_rng_alone(digits):
    draws = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        Autoencoder(**TINY).fit(digits[0][:100])
        draws.append(torch.rand(3))
        torch.manual_seed(seed)
        assert torch.equal(draws[-1], torch.rand(3))  # the same draw as if fit had not run
    assert not torch.equal(*draws)


def test_feature_names_survive_save_and_load(tmp_path, digits):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(digits[0][:200] / 255.0, columns=[f"px{i}" for i in range(64)])
    ae = Autoencoder(**TINY).fit(df)
    back = Autoencoder.load(ae.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.feature_names_in_, ae.feature_names_in_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X has feature names, but Autoencoder was fitted without" before the fix
        np.testing.assert_array_equal(back.transform(df), ae.transform(df))
    assert list(back.get_feature_names_out()) == ["autoencoder0", "autoencoder1"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_load_on_missing_cuda_is_a_one_line_error(tmp_path, digits):
    path = Autoencoder(**TINY).fit(digits[0][:100]).save(tmp_path / "m")
    with pytest.raises(LatentAtlasError, match="CUDA is not available"):
        Autoencoder.load(path, device="cuda")


def test_integer_pixels_other_than_uint8_are_refused_in_words():  # as pixels; auto scales them as numbers
    x = np.random.default_rng(0).integers(0, 256, (30, 16)).astype(np.int64)
    with pytest.raises(LatentAtlasError, match=r"integer pixels of dtype int64 must be uint8 0\.\.255"):
        Autoencoder(preset=None, hidden_sizes=(8,), geometry="euclidean", latent_dim=2, epochs=1,
                    scaling="pixels").fit(x)
    assert Autoencoder(preset=None, hidden_sizes=(8,), geometry="euclidean", latent_dim=2, epochs=1,
                       random_state=0).fit(x).scaling_.name == "minmax"


def test_uint8_frames_and_nested_int_lists_are_pixels_as_the_array_is(digits):
    """A DataFrame of uint8 columns and ``X.tolist()`` of uint8 images (Python ints, no dtype) give the latents of
    the uint8 array itself: 0..255 pixels, not floats refused for lying past 1."""
    pd = pytest.importorskip("pandas")
    x = digits[0][:100]
    assert x.dtype == np.uint8
    expected = Autoencoder(**TINY).fit(x).transform(x)
    frame = pd.DataFrame(x, columns=[f"px{i}" for i in range(64)])
    for given in (frame, x.tolist(), x.reshape(100, 8, 8).tolist()):
        np.testing.assert_allclose(Autoencoder(**TINY).fit(given).transform(given), expected, atol=1e-6)
    past = (x.astype(np.int64) + 1000).tolist()
    with pytest.raises(LatentAtlasError, match="integer pixels of dtype int64"):  # ints past 255 are not pixels
        Autoencoder(**TINY, scaling="pixels").fit(past)
    assert Autoencoder(**TINY).fit(past).scaling_.name == "minmax"  # and "auto" scales them instead
