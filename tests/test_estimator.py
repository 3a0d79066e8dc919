"""The scikit-learn estimator: scikit-learn's own checks, composition, inputs, and safe save/load."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from latentatlas import Autoencoder
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError
from latentatlas.runs import train_run

TINY = dict(preset=None, hidden_sizes=(8,), geometry="euclidean", latent_dim=2, epochs=2, batch_size=16,
            random_state=0, device="cpu")


# With scaling="minmax" every scikit-learn check applies and passes; the only one not run is the one scikit-learn
# itself skips without SCIPY_ARRAY_API set (array-API inputs), which it reports with that reason.
@parametrize_with_checks([Autoencoder(**TINY, scaling="minmax"),
                          Autoencoder(**{**TINY, "geometry": "sphere", "latent_dim": 3}, scaling="minmax")])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


# The default scaling="pixels" takes uint8 or floats in [0, 1] and refuses anything else by design. These checks
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


@parametrize_with_checks([Autoencoder(**TINY)], expected_failed_checks=lambda est: PIXEL_MODE_NOT_APPLICABLE)
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
def test_bad_pixels_refused(X, message):
    with pytest.raises(ValueError, match=message):
        Autoencoder(**TINY).fit(X)


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


def test_readme_example_runs(tmp_path, monkeypatch):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"<!-- example -->\n```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
