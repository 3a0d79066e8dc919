"""Strict file readers: IDX (raw or gzipped), IDX folders, .npz, folders of .npy arrays, folders of images.

Each refuses a damaged or inconsistent file with one ``LatentAtlasError`` line that names the file.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._limits import check_fits
from ..errors import LatentAtlasError
from .dataset import Dataset, labels_from

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzipped) strictly: magic number, dimensions and exact payload length.

    The header is checked against the file's size (raw) or caps the decompression (gzipped) before the payload is
    read, so a damaged or hostile header cannot make it spend memory.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_MAX_IDX_HEADER)
            if head[:2] != _GZIP_MAGIC:
                shape, dtype, header = _idx_header(head, path.name)
                _check_payload(path.name, shape, dtype, os.fstat(f.fileno()).st_size - header)
                check_fits(math.prod(shape) * dtype.itemsize, f"{path.name}: its {' x '.join(map(str, shape))} array")
            if head[:2] == _GZIP_MAGIC:
                raw = head + f.read()  # compressed bytes: what inflates is capped by _gunzip_idx
            else:
                raw = bytearray(os.fstat(f.fileno()).st_size)  # its size checked against the header above
                raw[:len(head)] = head
                f.readinto(memoryview(raw)[len(head):])
    except OSError as e:
        raise LatentAtlasError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_idx(raw, path.name)


def idx_shape(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an IDX file's header (raw or gzipped) claims, read without its payload."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise LatentAtlasError(f"{path}: cannot read ({e.strerror or e})") from None
    if head[:2] == _GZIP_MAGIC:
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, _MAX_IDX_HEADER)
        except zlib.error as e:
            raise LatentAtlasError(f"{path.name}: corrupt or truncated gzip data ({e})") from None
    shape, dtype, _ = _idx_header(head[:_MAX_IDX_HEADER], path.name)
    return shape, dtype


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip_idx(raw, name)
    shape, dtype, header = _idx_header(raw, name)
    _check_payload(name, shape, dtype, len(raw) - header)
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


_GZIP_MAGIC = b"\x1f\x8b"
_MAX_IDX_HEADER = 4 + 4 * 4


def _idx_header(raw: bytes, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) of an IDX file's first bytes; refuses anything else."""
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise LatentAtlasError(f"{name}: not an IDX file (magic bytes {raw[:4].hex(' ') or 'missing'})")
    ndim = raw[3]
    if not 1 <= ndim <= 4:
        raise LatentAtlasError(f"{name}: IDX header gives {ndim} dimensions; 1 to 4 are supported")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LatentAtlasError(f"{name}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    return shape, np.dtype(IDX_DTYPES[raw[2]]), header


def _check_payload(name: str, shape: tuple[int, ...], dtype: np.dtype, found: int) -> int:
    """The payload size the header implies (exact integers: no overflow), against memory and what was found."""
    expected = math.prod(shape) * dtype.itemsize
    if found != expected:
        kind = "truncated" if found < expected else "trailing bytes"
        raise LatentAtlasError(f"{name}: {kind}: the header says {expected} payload bytes, found {found}")
    return expected


def _gunzip_idx(raw: bytes, name: str) -> memoryview:
    """Decompress a gzipped IDX file in a stream capped at the size its own header implies (plus one byte, to
    tell trailing data): a small file that inflates to gigabytes stops at the cap. The output is allocated once,
    at the header's size, after that size is checked against memory: never grown, never copied."""
    out = bytearray(_MAX_IDX_HEADER)
    n = 0  # bytes of ``out`` filled
    limit = _MAX_IDX_HEADER  # until the header is known
    known, header = False, 0
    d, pending = zlib.decompressobj(wbits=31), raw

    def trailing():
        return LatentAtlasError(f"{name}: trailing bytes: it decompresses to more than the {limit - header} payload "
                                "bytes its header says")
    try:
        while True:
            chunk = d.decompress(pending, min(1 << 20, limit + 1 - n if known else _MAX_IDX_HEADER - n))
            pending = d.unconsumed_tail
            if n + len(chunk) > limit:
                raise trailing()
            out[n:n + len(chunk)] = chunk
            n += len(chunk)
            if not known and n >= 4 and (n >= _MAX_IDX_HEADER or d.eof):
                shape, dtype, header = _idx_header(bytes(out[:min(n, _MAX_IDX_HEADER)]), name)
                limit = header + check_fits(math.prod(shape) * dtype.itemsize,
                                            f"{name}: its header's {' x '.join(map(str, shape))} array of {dtype.name}",
                                            "a damaged or hostile header")
                # np.empty, not bytearray, which zero-fills: a header that claims gigabytes over a few bytes costs
                # address space, not gigabytes written (3.4 GB took 2 s), and fails at the first missing byte.
                if n > limit:  # what is already decompressed passes the header's size (an empty array, say)
                    raise trailing()
                grown = memoryview(np.empty(limit, np.uint8))
                grown[:n] = out[:n]
                out, known = grown, True
            if d.eof:
                if not d.unused_data.strip(b"\0"):
                    break
                d, pending = zlib.decompressobj(wbits=31), d.unused_data  # concatenated gzip members, as gzip reads
            elif not pending and not chunk:
                raise LatentAtlasError(f"{name}: corrupt or truncated gzip data (the stream ends early)")
    except zlib.error as e:
        raise LatentAtlasError(f"{name}: corrupt or truncated gzip data ({e})") from None
    return memoryview(out)[:n]


def find_idx_files(folder: Path) -> dict[str, Path]:
    """The four MNIST-style files in ``folder``; accepts t10k/test prefixes, - or . separators, optional .gz."""
    if not folder.is_dir():
        raise LatentAtlasError(f"{folder}: not a folder")
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
    files = find_idx_files(folder)
    # The four headers first: files that disagree, or together cannot fit, are refused before a payload is read.
    shapes = {role: idx_shape(path) for role, path in files.items()}
    for role, path in files.items():
        want, got = 3 if role.endswith("images") else 1, len(shapes[role][0])
        if got != want:
            raise LatentAtlasError(f"{path.name}: {role.replace('_', ' ')} must be {want}-D, this IDX file is {got}-D (mislabelled file?)")
    for split in ("train", "test"):
        n_x, n_y = shapes[f"{split}_images"][0][0], shapes[f"{split}_labels"][0][0]
        if n_x != n_y:
            raise LatentAtlasError(f"{files[f'{split}_labels'].name}: {n_y} labels for {n_x} images: labels of the wrong length")
    check_fits(sum(math.prod(s) * d.itemsize for s, d in shapes.values()), f"{folder}: its four IDX files' arrays",
               "a damaged or hostile header")
    arrays = {role: read_idx(path) for role, path in files.items()}
    train_labels, test_labels = (labels_from(arrays[r], files[r].name, classes) for r in ("train_labels", "test_labels"))
    return Dataset(name or folder.name, arrays["train_images"], train_labels, arrays["test_images"], test_labels, classes)


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
            # NAME_test: per-sample values of the test set to colour maps by (heading_test, speed_test).
            extra = [k for k in f.files if k.endswith("_test") and k not in keys and len(k) > len("_test")]
            with zipfile.ZipFile(path) as z:  # every header first: nothing is decompressed that cannot be kept
                shapes = {}
                for k in (*keys, *extra):
                    info = z.getinfo(f"{k}.npy")
                    with z.open(info) as member:
                        shapes[k] = _check_npy_header(member, info.file_size, f"{path.name} ({k})")
            _check_together(path.name, shapes)  # the four arrays; the extras' sizes were checked one by one
            arrays = {k: f[k] for k in keys}
            values = {k[: -len("_test")]: f[k] for k in extra}
            names = f["class_names"] if "class_names" in f.files else None  # optional: one name per label
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
    classes = None
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise LatentAtlasError(f"{path.name}: class_names must be a 1-D array of strings (np.array(['a', 'b'])), "
                                   f"got shape {names.shape} dtype {names.dtype}")
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist())
    for k, v in values.items():
        if v.dtype.kind not in "biuf" or v.ndim not in (1, 2) or len(v) != len(arrays["x_test"]):
            raise LatentAtlasError(f"{path.name}: {k}_test must hold numbers, one row per test sample "
                                   f"({len(arrays['x_test'])}), got shape {v.shape} dtype {v.dtype}")
    return Dataset(name or path.stem, arrays["x_train"], labels_from(arrays["y_train"], f"{path.name} (y_train)", classes),
                   arrays["x_test"], labels_from(arrays["y_test"], f"{path.name} (y_test)", classes), classes=classes,
                   values_test=values)


NPY_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npy_folder(folder: str | os.PathLike, name: str | None = None) -> Dataset:
    """A folder with x_train.npy, y_train.npy, x_test.npy, y_test.npy; images are memory-mapped, never loaded whole."""
    folder = Path(folder)
    missing = [k for k in NPY_KEYS if not (folder / f"{k}.npy").is_file()]
    if missing:
        raise LatentAtlasError(f"{folder}: missing {', '.join(k + '.npy' for k in missing)}; a folder of arrays needs {', '.join(k + '.npy' for k in NPY_KEYS)}")
    arrays = {}
    for k in NPY_KEYS:
        try:
            with open(folder / f"{k}.npy", "rb") as f:
                header = _check_npy_header(f, os.fstat(f.fileno()).st_size, f"{k}.npy")
            if k.startswith("y") and header is not None:  # labels are read whole; images are memory-mapped
                check_fits(math.prod(header[0]) * header[1].itemsize, f"{k}.npy")
            arrays[k] = np.load(folder / f"{k}.npy", mmap_mode="r" if k.startswith("x") else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise LatentAtlasError(f"{k}.npy: not a valid .npy file ({str(e).splitlines()[0]})") from None
    return Dataset(name or folder.name, arrays["x_train"], labels_from(arrays["y_train"], "y_train.npy"),
                   arrays["x_test"], labels_from(arrays["y_test"], "y_test.npy"))


def _check_npy_header(f, size: int, name: str) -> None:
    """Read an .npy header and refuse, before numpy allocates, a shape the machine or the file cannot hold."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        read = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
        if read is None:
            return  # a newer format: np.load checks it as it can
        shape, _, dtype = read(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise LatentAtlasError(f"{name}: not a valid .npy file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if dtype.hasobject:
        return None  # refused as a pickle by np.load, with its own message
    expected = math.prod(shape) * dtype.itemsize
    check_fits(expected, f"{name}: its header's {' x '.join(map(str, shape)) or 'scalar'} array of {dtype}",
               "a damaged or hostile header")
    if expected > size - f.tell():
        raise LatentAtlasError(f"{name}: truncated: the header says {expected} data bytes, the file holds {size - f.tell()}")
    return shape, dtype


def _check_together(name: str, shapes: dict) -> None:
    """Refuse, from their headers alone, arrays whose counts disagree or that together cannot fit in memory."""
    if any(v is None for v in shapes.values()):
        return  # a newer format or object arrays: np.load refuses or reads them as it can
    for split in ("train", "test"):
        (sx, _), (sy, _) = shapes[f"x_{split}"], shapes[f"y_{split}"]
        if sx[:1] != sy[:1]:
            raise LatentAtlasError(f"{name}: {sx[0] if sx else 0} {split} images but labels of shape {sy}: "
                                   "labels of the wrong length")
    check_fits(sum(math.prod(s) * d.itemsize for s, d in shapes.values()), f"{name}: its four arrays",
               "a damaged or hostile header")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _grayscale(im, name: str) -> np.ndarray:
    """uint8 (H, W) from an open image: 8-bit modes via Pillow's grayscale, 16-bit scaled exactly, the rest refused."""
    from PIL import ImageMode

    if im.mode.startswith("I;16") or im.mode == "I":  # Pillow opens 16-bit grayscale PNGs as I;16 (older versions: I)
        a = np.asarray(im).astype(np.int64)
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise LatentAtlasError(f"{name}: a 32-bit integer image with values {lo}..{hi}, outside 16-bit 0..65535: refused rather than guessed; save it as an 8- or 16-bit grayscale PNG")
        # round(v * 255 / 65535) in exact integers; there are no ties, as 65535 is odd. convert("L") would clip instead.
        return ((a * 255 + 32767) // 65535).astype(np.uint8)
    if np.dtype(ImageMode.getmode(im.mode).typestr).itemsize != 1:  # F (32-bit float) and any other wide mode
        raise LatentAtlasError(f"{name}: pixels of mode {im.mode} have no known 0..255 scale: refused rather than guessed; save it as an 8- or 16-bit PNG")
    return np.asarray(im.convert("L"), dtype=np.uint8)


def read_images(paths: list[Path], size: int | None = None, root: Path | None = None) -> np.ndarray:
    """Grayscale uint8 (N, H, W) from image files; ``size`` resizes each to size x size, else all must match.

    Files are named relative to ``root`` in errors (else by file name).
    """
    from PIL import Image, UnidentifiedImageError

    images, first = [], None
    for p in paths:
        name = str(p.relative_to(root)) if root is not None else p.name
        try:
            with Image.open(p) as im:
                a = _grayscale(im, name)  # (H, W)
        except LatentAtlasError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, KeyError, Image.DecompressionBombError) as e:
            raise LatentAtlasError(f"{name}: not a readable image ({e})") from None
        if size is not None:
            a = np.asarray(Image.fromarray(a, "L").resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
        if first is None:
            first = (name, a.shape)
        elif a.shape != first[1]:
            raise LatentAtlasError(f"images of different sizes in a folder: {first[0]} is {first[1][1]}x{first[1][0]}, {name} is {a.shape[1]}x{a.shape[0]}; give an image size to resize them all")
        images.append(a)
    return np.stack(images)


def load_image_folder(folder: str | os.PathLike, size: int | None = None, name: str | None = None) -> Dataset:
    """PNG/JPEG images, grayscale; class subfolders give labels; ``train/`` and ``test/`` give the split.

    Layouts: ``folder/{train,test}/<class>/**/*.png``, or ``folder/<class>/**/*.png``, or ``folder/*.png`` (one
    class); images nested deeper inside a class folder belong to that class (as in torchvision's ImageFolder).
    Without ``train/`` and ``test/`` the split is a fixed, seeded, stratified 80 / 20. An image that the layout
    gives no class or split is refused, never skipped. 16-bit grayscale is scaled to 0..255 exactly.
    """
    folder = Path(folder)
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        stray = [p for p in _images(folder) if p.relative_to(folder).parts[0] not in ("train", "test")]
        if stray:
            raise LatentAtlasError(f"{stray[0]}: an image outside train/ and test/ belongs to neither split{_more(stray)}: move it into train/ or test/")
        classes = sorted({d.name for split in ("train", "test") for d in (folder / split).iterdir() if d.is_dir()})
        (x_tr, y_tr), (x_te, y_te) = (_labelled_images(folder / s, classes, size, folder) for s in ("train", "test"))
        return Dataset(name or folder.name, x_tr, y_tr, x_te, y_te, tuple(classes) or None)
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    x, y = _labelled_images(folder, classes, size, folder)
    from sklearn.model_selection import train_test_split

    if len(x) < 2:
        raise LatentAtlasError(f"{folder}: {len(x)} image(s): at least 2 are needed for a train/test split")
    n_test = math.ceil(0.2 * len(x))
    # Stratified where it can be: each class twice, and room for every class on both sides of the split.
    can_stratify = len(classes) > 1 and np.bincount(y).min() >= 2 and min(n_test, len(x) - n_test) >= len(classes)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=n_test, stratify=y if can_stratify else None,
                                              random_state=0)
    return Dataset(name or folder.name, x_tr, y_tr, x_te, y_te, tuple(classes) or None)


def _images(d: Path, recursive: bool = True) -> list[Path]:
    """The PNG/JPEG files in ``d`` (and below it if ``recursive``), sorted."""
    found = d.rglob("*") if recursive else d.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _more(paths: list[Path]) -> str:
    return f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""


def _labelled_images(folder: Path, classes: list[str], size: int | None, root: Path) -> tuple[np.ndarray, np.ndarray]:
    if classes:
        loose = _images(folder, recursive=False)
        if loose:  # silently skipping them lost data; guessing a class for them would be worse
            raise LatentAtlasError(f"{loose[0]}: an image beside the class folders ({', '.join(classes)}) has no class{_more(loose)}: move it into a class folder")
    groups = [(i, folder / c) for i, c in enumerate(classes)] if classes else [(0, folder)]
    paths, labels = [], []
    for label, d in groups:
        found = _images(d) if d.is_dir() else []
        paths += found
        labels += [label] * len(found)
    if not paths:
        raise LatentAtlasError(f"{folder}: no PNG or JPEG images found (an empty data set)")
    if size is not None:
        check_fits(len(paths) * size * size, f"{folder}: {len(paths)} images of {size} x {size} pixels",
                   "choose a smaller image size")
    return read_images(paths, size, root), np.asarray(labels, np.int64)
