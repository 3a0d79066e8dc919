"""Folders of images and memory-mapped .npy arrays as data sets."""

import numpy as np
import pytest
from PIL import Image

from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError
from latentatlas.run_training import train_run


def make_images(folder, classes=("a", "b"), n=5, size=(12, 10), mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").convert(mode).save(folder / c / f"{i}.{'jpg' if i % 2 else 'png'}")


def test_image_folder_with_classes(tmp_path):
    make_images(tmp_path / "imgs")
    ds = load_dataset(str(tmp_path / "imgs"))
    assert ds.classes == ("a", "b") and ds.x_train.dtype == np.uint8 and ds.image_shape == (10, 12)
    assert len(ds.y_train) == 8 and len(ds.y_test) == 2 and set(ds.y_test) == {0, 1}


def test_image_folder_train_test_and_resize(tmp_path):
    make_images(tmp_path / "imgs" / "train", n=4, size=(30, 30))
    make_images(tmp_path / "imgs" / "test", n=2, size=(20, 25), mode="L")
    ds = load_dataset(str(tmp_path / "imgs"), image_size=16)
    assert ds.x_train.shape == (8, 16, 16) and ds.x_test.shape == (4, 16, 16)


def test_image_folder_grayscale_matches_pillow(tmp_path):
    make_images(tmp_path / "imgs", classes=("only",), n=3)
    ds = load_dataset(str(tmp_path / "imgs"))
    png = np.asarray(Image.open(tmp_path / "imgs" / "only" / "0.png").convert("L"))
    assert any(np.array_equal(png, x) for x in np.concatenate([ds.x_train, ds.x_test]))


def test_image_folder_trains(tmp_path):
    make_images(tmp_path / "imgs", size=(8, 8), n=20)
    run = train_run(RunConfig(preset="deep-2d", data=str(tmp_path / "imgs"), epochs=1), tmp_path / "run", progress=False)
    assert run.metrics["n_params"] > 0 and (run.path / "figures" / "decoder_grid_plane.png").is_file()


def test_npy_folder_is_memory_mapped(tmp_path):
    rng = np.random.default_rng(0)
    for k, a in dict(x_train=rng.integers(0, 256, (50, 6, 6), dtype=np.uint8), y_train=np.arange(50) % 3,
                     x_test=rng.integers(0, 256, (10, 6, 6), dtype=np.uint8), y_test=np.arange(10) % 3).items():
        np.save(tmp_path / f"{k}.npy", a)
    ds = load_dataset(str(tmp_path))
    assert isinstance(ds.x_train, np.memmap) and ds.x_train.shape == (50, 6, 6)
    run = train_run(RunConfig(preset="shallow-2d", data=str(tmp_path), epochs=1), tmp_path / "run", progress=False)
    assert run.metrics["epochs"] == 1


def test_npy_folder_missing_array(tmp_path):
    np.save(tmp_path / "x_train.npy", np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(LatentAtlasError, match="missing y_train.npy"):
        load_dataset(str(tmp_path))


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
def test_samples_without_pixels_are_refused_in_words(dtype):
    from latentatlas.data import Dataset
    from latentatlas.errors import LatentAtlasError

    x, y = np.zeros((2, 0), dtype), np.zeros(2, np.int64)  # found by the fuzz test: float min() of nothing
    with pytest.raises(LatentAtlasError, match=r"samples of shape \(0,\) have no pixels"):
        Dataset("empty", x, y, x, y)
