"""Folders of images: pixel modes read faithfully or refused, and every image given a class and a split or refused."""

import numpy as np
import pytest
from PIL import Image

from latentatlas.data import load_dataset, load_image_folder
from latentatlas.errors import LatentAtlasError


def u8(seed, shape=(6, 7)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path, image, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kw)


def all_images(ds):
    return np.concatenate([ds.x_train, ds.x_test])


def same_rows(a, b):
    return sorted(x.tobytes() for x in a) == sorted(x.tobytes() for x in b)


# 1. Pixel modes


def test_16_bit_png_gives_back_the_8_bit_image_exactly(tmp_path):
    originals = [u8(i) for i in range(5)]
    for i, a in enumerate(originals):
        save(tmp_path / "imgs" / f"{i}.png", Image.fromarray(a.astype(np.uint16) * 257))  # 0..65535
    with Image.open(tmp_path / "imgs" / "0.png") as im:
        assert im.mode.startswith("I;16")  # really a 16-bit file, so the oracle tests the 16-bit path
    ds = load_dataset(str(tmp_path / "imgs"))
    assert ds.x_train.dtype == np.uint8 and same_rows(all_images(ds), originals)


def test_16_bit_values_round_to_nearest(tmp_path):
    v = np.array([[0, 128, 129, 385, 386, 65535, 32767, 32896]], np.uint16)  # 128/257 = 0.498, 129/257 = 0.502
    for i in range(2):
        save(tmp_path / "imgs" / f"{i}.png", Image.fromarray(v))
    x = all_images(load_dataset(str(tmp_path / "imgs")))
    assert (x == np.rint(v.astype(np.float64) * 255 / 65535).astype(np.uint8)).all()
    assert x[0].tolist() == [[0, 0, 1, 1, 2, 255, 127, 128]]


def test_32_bit_integer_image_within_16_bits_is_scaled_as_16_bit(tmp_path):
    a = u8(0).astype(np.int32) * 257
    for i in range(2):  # Pillow writes mode I only as TIFF; the reader goes by content, not by suffix
        save(tmp_path / "imgs" / f"{i}.png", Image.fromarray(a, "I"), format="TIFF")
    with Image.open(tmp_path / "imgs" / "0.png") as im:
        assert im.mode == "I"
    assert (all_images(load_dataset(str(tmp_path / "imgs"))) == u8(0)).all()


@pytest.mark.parametrize("image, said", [
    (Image.fromarray(np.array([[0, 70000]], np.int32), "I"), "0.png: a 32-bit integer image with values 0..70000"),
    (Image.fromarray(np.array([[-5, 10]], np.int32), "I"), "0.png: a 32-bit integer image with values -5..10"),
    (Image.fromarray(np.array([[0.0, 0.5]], np.float32), "F"), "0.png: pixels of mode F have no known 0..255 scale"),
])
def test_images_that_cannot_be_read_faithfully_are_refused(tmp_path, image, said):
    for i in range(2):
        save(tmp_path / "imgs" / f"{i}.png", image, format="TIFF")
    with pytest.raises(LatentAtlasError, match="^" + said) as e:
        load_dataset(str(tmp_path / "imgs"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA", "L", "1"])
def test_8_bit_modes_keep_pillows_grayscale(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    image = Image.fromarray(rgb, "RGB").convert(mode)
    for i in range(2):
        save(tmp_path / "imgs" / f"{i}.png", image)
    with Image.open(tmp_path / "imgs" / "0.png") as im:
        assert im.mode == mode
        expected = np.asarray(im.convert("L"))
    x = all_images(load_dataset(str(tmp_path / "imgs")))
    assert (x == expected).all()


def test_16_bit_images_resize_like_8_bit_ones(tmp_path):
    save(tmp_path / "a" / "0.png", Image.fromarray(u8(0)))
    save(tmp_path / "a" / "1.png", Image.fromarray(u8(1)))
    save(tmp_path / "b" / "0.png", Image.fromarray(u8(0).astype(np.uint16) * 257))
    save(tmp_path / "b" / "1.png", Image.fromarray(u8(1).astype(np.uint16) * 257))
    a, b = (load_image_folder(tmp_path / d, size=4) for d in "ab")
    assert a.image_shape == (4, 4) and same_rows(all_images(a), all_images(b))


# 2. Every image has a class and a split, or the folder is refused


def class_folder(root, classes=("a", "b"), n=5):
    for k, c in enumerate(classes):
        for i in range(n):
            save(root / c / f"{i}.png", Image.fromarray(u8(1000 + 100 * k + i)))


def test_images_nested_in_a_class_folder_belong_to_that_class(tmp_path):
    class_folder(tmp_path / "imgs")
    deep = [u8(100 + i) for i in range(3)]
    for i, a in enumerate(deep):
        save(tmp_path / "imgs" / "b" / "sub" / "deeper" / f"{i}.png", Image.fromarray(a))
    ds = load_dataset(str(tmp_path / "imgs"))
    x, y = all_images(ds), np.concatenate([ds.y_train, ds.y_test])
    assert len(x) == 13 and ds.classes == ("a", "b")
    for a in deep:
        assert [int(label) for img, label in zip(x, y) if np.array_equal(img, a)] == [1]


def test_loose_images_beside_class_folders_are_refused(tmp_path):
    class_folder(tmp_path / "imgs")
    for i in range(3):
        save(tmp_path / "imgs" / f"loose{i}.png", Image.fromarray(u8(i)))
    with pytest.raises(LatentAtlasError, match=r"loose0\.png: an image beside the class folders \(a, b\) has no class "
                                               r"\(and 2 more\): move it into a class folder$"):
        load_dataset(str(tmp_path / "imgs"))


def test_split_folders_with_nested_classes(tmp_path):
    class_folder(tmp_path / "imgs" / "train", n=4)
    class_folder(tmp_path / "imgs" / "test", classes=("b",), n=2)
    save(tmp_path / "imgs" / "train" / "a" / "more" / "x.png", Image.fromarray(u8(7)))
    ds = load_dataset(str(tmp_path / "imgs"))
    assert ds.classes == ("a", "b") and len(ds.x_train) == 9 and ds.y_test.tolist() == [1, 1]


def test_split_folders_without_classes_still_work(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            save(tmp_path / "imgs" / split / f"{i}.png", Image.fromarray(u8(i)))
    ds = load_dataset(str(tmp_path / "imgs"))
    assert ds.classes is None and len(ds.x_train) == 4 and len(ds.x_test) == 2


@pytest.mark.parametrize("where, said", [
    ("stray.png", r"imgs/stray\.png: an image outside train/ and test/ belongs to neither split: move it into train/ or test/$"),
    ("val/a/0.png", r"imgs/val/a/0\.png: an image outside train/ and test/ belongs to neither split"),
    ("train/loose.png", r"imgs/train/loose\.png: an image beside the class folders \(a, b\) has no class"),
    ("test/loose.png", r"imgs/test/loose\.png: an image beside the class folders \(a, b\) has no class"),
])
def test_images_outside_the_split_layout_are_refused(tmp_path, where, said):
    class_folder(tmp_path / "imgs" / "train", n=2)
    class_folder(tmp_path / "imgs" / "test", n=1)
    save(tmp_path / "imgs" / where, Image.fromarray(u8(0)))
    with pytest.raises(LatentAtlasError, match=said):
        load_dataset(str(tmp_path / "imgs"))


def test_errors_name_nested_files_by_their_path_in_the_folder(tmp_path):
    class_folder(tmp_path / "imgs", n=2)
    (tmp_path / "imgs" / "b" / "sub").mkdir()
    (tmp_path / "imgs" / "b" / "sub" / "0.png").write_bytes(b"not a png")
    with pytest.raises(LatentAtlasError, match=r"^b/sub/0\.png: not a readable image"):
        load_dataset(str(tmp_path / "imgs"))
