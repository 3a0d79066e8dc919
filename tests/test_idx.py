"""The strict IDX reader, IDX folders and .npz files: exact round trips and one clear error per kind of damage."""

import gzip
import io

import numpy as np
import pytest

from idx_files import idx_bytes, write_mnist_folder
from latentatlas.data import Dataset, load_dataset, load_idx_folder, load_npz, read_idx
from latentatlas.errors import LatentAtlasError


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, gz, dtype):
    a = (np.arange(2 * 3 * 4).reshape(2, 3, 4) - 5).astype(dtype)
    (tmp_path / "f").write_bytes(idx_bytes(a, gz))
    b = read_idx(tmp_path / "f")
    np.testing.assert_array_equal(a, b)
    assert b.dtype.isnative


GOOD = idx_bytes(np.zeros((3, 2, 2), np.uint8))
CORRUPT = {
    "empty": (b"", "not an IDX file"),
    "wrong magic": (b"\x01\x02" + GOOD[2:], "not an IDX file"),
    "unknown dtype": (GOOD[:2] + b"\x07" + GOOD[3:], "not an IDX file"),
    "zero dims": (GOOD[:3] + b"\x00" + GOOD[4:], "0 dimensions"),
    "absurd dims": (GOOD[:3] + b"\x09" + GOOD[4:], "9 dimensions"),
    "truncated header": (GOOD[:9], "truncated IDX header"),
    "truncated payload": (GOOD[:-3], "truncated: the header says 12 payload bytes, found 9"),
    "trailing bytes": (GOOD + b"\x00", "trailing bytes"),
    "huge header": (b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3 + b"\x00" * 10, "truncated"),
    "cut gzip": (gzip.compress(GOOD)[:-6], "corrupt or truncated gzip"),
}


@pytest.mark.parametrize("case", CORRUPT)
def test_corrupt_files_are_refused_naming_the_file(tmp_path, case):
    data, message = CORRUPT[case]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(LatentAtlasError, match=message) as e:
        read_idx(path)
    assert path.name in str(e.value) and "\n" not in str(e.value)


def test_idx_folder_round_trip(tmp_path):
    x_tr, y_tr, x_te, y_te = write_mnist_folder(tmp_path / "d")
    ds = load_dataset(str(tmp_path / "d"))
    np.testing.assert_array_equal(ds.x_train, x_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)
    assert ds.image_shape == (28, 28) and ds.n_features == 784 and ds.y_train.dtype == np.int64


def test_idx_folder_missing_file_is_named(tmp_path):
    write_mnist_folder(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(LatentAtlasError, match="missing test_labels"):
        load_idx_folder(tmp_path)


def test_idx_folder_label_count_mismatch(tmp_path):
    write_mnist_folder(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(19, np.uint8)))
    with pytest.raises(LatentAtlasError, match="19 labels for 20 images"):
        load_idx_folder(tmp_path)


def test_idx_folder_mislabelled_file(tmp_path):
    write_mnist_folder(tmp_path, gz=False)
    images = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(images)
    with pytest.raises(LatentAtlasError, match="train-labels-idx1-ubyte: train labels must be 1-D.*3-D"):
        load_idx_folder(tmp_path)


def test_idx_folder_ambiguous(tmp_path):
    write_mnist_folder(tmp_path, gz=False)
    write_mnist_folder(tmp_path, gz=True)
    with pytest.raises(LatentAtlasError, match="several files for train images"):
        load_idx_folder(tmp_path)


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD_NPZ = dict(x_train=np.zeros((4, 2, 2), np.uint8), y_train=np.arange(4), x_test=np.ones((2, 2, 2), np.float32),
                y_test=np.arange(2))


def test_npz_round_trip(tmp_path):
    (tmp_path / "d.npz").write_bytes(npz_bytes(**GOOD_NPZ))
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.name == "d" and ds.x_test.dtype == np.float32 and len(ds.y_train) == 4


def test_npz_of_numbers_not_pixels_is_read_and_refused_only_as_pixels(tmp_path):
    from latentatlas.data import DataSpec

    (tmp_path / "d.npz").write_bytes(npz_bytes(**{**GOOD_NPZ, "x_test": np.full((2, 2, 2), 255.0, np.float32)}))
    assert load_npz(tmp_path / "d.npz").x_test.max() == 255  # any numbers: scaling decides what they become
    with pytest.raises(LatentAtlasError, match=r"range over \[255, 255\].*must lie in \[0, 1\]"):
        DataSpec(str(tmp_path / "d.npz"), scaling="pixels").load()


@pytest.mark.parametrize("arrays,message", [
    ({k: v for k, v in GOOD_NPZ.items() if k != "y_test"}, "missing arrays y_test"),
    ({**GOOD_NPZ, "y_train": np.array([None] * 4, dtype=object)}, "object arrays.*refused"),
    ({**GOOD_NPZ, "y_train": np.arange(3)}, "4 train images but labels of shape"),
    ({**GOOD_NPZ, "x_test": np.full((2, 2, 2), np.nan)}, "NaN or infinite"),
    ({**GOOD_NPZ, "x_train": np.zeros((0, 2, 2), np.uint8), "y_train": np.arange(0)}, "train set is empty"),
    ({**GOOD_NPZ, "x_test": np.zeros((2, 3, 3), np.uint8)}, "train samples are"),
])
def test_npz_bad_content(tmp_path, arrays, message):
    (tmp_path / "d.npz").write_bytes(npz_bytes(**arrays))
    with pytest.raises(LatentAtlasError, match=message):
        load_npz(tmp_path / "d.npz")


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"PK\x03\x04" + b"\x00" * 40, lambda b: b"hello"])
def test_npz_corrupt(tmp_path, damage):
    (tmp_path / "d.npz").write_bytes(damage(npz_bytes(**GOOD_NPZ)))
    with pytest.raises(LatentAtlasError, match="d.npz: not a valid .npz file"):
        load_npz(tmp_path / "d.npz")


def test_dataset_validates_labels():
    with pytest.raises(LatentAtlasError, match="one integer label per image"):
        Dataset("x", np.zeros((3, 4), np.uint8), np.zeros(2, int), np.zeros((1, 4), np.uint8), np.zeros(1, int))


def test_dataset_edge_cases(tmp_path):
    ds = Dataset("x", np.zeros((3, 4), np.uint8), np.zeros(3, int), np.zeros((1, 4), np.uint8), np.zeros(1, int))
    with pytest.raises(LatentAtlasError, match="unknown split 'val'"):
        ds.flat("val")
    with pytest.raises(LatentAtlasError, match="no pixels"):
        Dataset("x", np.zeros((3, 0), np.uint8), np.zeros(3, int), np.zeros((1, 0), np.uint8), np.zeros(1, int))
    with pytest.raises(LatentAtlasError, match="not a folder"):
        load_idx_folder(tmp_path / "nowhere")
