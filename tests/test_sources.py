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
