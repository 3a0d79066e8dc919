"""The data set type every source returns, and the pixel rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import LatentAtlasError


@dataclass(frozen=True)
class Dataset:
    """Images and labels with a train/test split.

    Images are uint8 0..255 (or floats in [0, 1]) shaped (N, H, W), or (N, D) for flat samples; labels are (N,)
    integers. ``classes`` holds class names when they are known. ``factors_*`` (N, k) are the true latent
    variables where a synthetic source knows them (angles in radians), for scoring a learned latent against them.
    ``draw_train``, where set, is applied to every training batch (floats in [0, 1]) each time it is drawn: dynamic
    binarisation draws new binary pixels every epoch; it takes torch's global generator, which the trainer seeds
    per epoch.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] | None = None
    factors_train: np.ndarray | None = None
    factors_test: np.ndarray | None = None
    draw_train: Callable | None = None

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim < 2 or len(x) == 0:
                raise LatentAtlasError(f"{self.name}: the {split} set is empty or not a stack of samples (shape {x.shape})")
            if x[0].size == 0:  # before the pixel check, which has no minimum to read on empty samples
                raise LatentAtlasError(f"{self.name}: {split} samples of shape {x.shape[1:]} have no pixels")
            if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
                raise LatentAtlasError(f"{self.name}: {len(x)} {split} images but labels of shape {y.shape} and dtype {y.dtype}: one integer label per image is needed")
            check_labels(y, f"{self.name} ({split} labels)", self.classes)
            check_pixels(x, f"{self.name} ({split})")
            f = getattr(self, f"factors_{split}")
            if f is not None and (f.ndim != 2 or len(f) != len(x)):
                raise LatentAtlasError(f"{self.name}: {len(x)} {split} samples but true factors of shape {f.shape}")
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
        if split not in ("train", "test"):
            raise LatentAtlasError(f"unknown split {split!r}: choose train or test")
        x = getattr(self, f"x_{split}")
        return x.reshape(len(x), -1), getattr(self, f"y_{split}")


# Labels are class indices: one colour, name and count per class follow, and the explorer stores them as uint16.
MAX_CLASSES = 65536


def check_labels(y: np.ndarray, what: str, classes=None) -> None:
    """Integer class indices 0..K-1, with K the number of class names where known; never cast from anything else."""
    if not np.issubdtype(y.dtype, np.integer):
        nan = " (some NaN)" if np.issubdtype(y.dtype, np.floating) and np.isnan(y).any() else ""
        raise LatentAtlasError(f"{what}: labels of dtype {y.dtype}{nan}: labels must be integer class indices "
                               "0, 1, 2, ...; they are never cast")
    if not len(y):
        return
    lo, hi = int(y.min()), int(y.max())
    bound = len(classes) if classes else MAX_CLASSES
    if lo < 0:
        raise LatentAtlasError(f"{what}: a negative label ({lo}): labels must be class indices 0, 1, 2, ...")
    if hi >= bound:
        named = f"the {bound} class names" if classes else f"{MAX_CLASSES} classes, the most latentatlas draws"
        raise LatentAtlasError(f"{what}: label {hi} is beyond {named}: labels must be class indices 0..{bound - 1}")


def labels_from(y: np.ndarray, what: str, classes=None) -> np.ndarray:
    """A file's labels as int64, checked first (see :func:`check_labels`)."""
    if y.ndim != 1:
        raise LatentAtlasError(f"{what}: labels must be a 1-D array, got shape {y.shape}")
    check_labels(y, what, classes)
    return y.astype(np.int64)


def check_pixels(x: np.ndarray, what: str) -> None:
    """uint8 is taken as 0..255; floats must be finite and in [0, 1], in the machine's byte order."""
    if x.dtype == np.uint8:
        return
    if np.issubdtype(x.dtype, np.floating) and not x.dtype.isnative:
        raise LatentAtlasError(f"{what}: pixels of dtype {x.dtype.str} ({'big' if x.dtype.byteorder == '>' else 'little'}-endian): "
                               f"store them in this machine's byte order (a.astype('{x.dtype.newbyteorder('=').str}')) or as uint8 0..255")
    if not np.issubdtype(x.dtype, np.floating):
        raise LatentAtlasError(f"{what}: pixels of dtype {x.dtype}: give uint8 0..255 or floats in [0, 1]")
    if not np.isfinite(x).all():
        raise LatentAtlasError(f"{what}: the data contain NaN or infinite values")
    lo, hi = x.min(), x.max()
    if lo < 0:  # scikit-learn's wording for positive-only estimators
        raise LatentAtlasError(f"{what}: Negative values in data passed to latentatlas (min {_exact(lo)}): pixels must lie in [0, 1], or pass uint8 0..255")
    if hi > 1:
        raise LatentAtlasError(f"{what}: float pixels range over [{_exact(lo)}, {_exact(hi)}]: floats must lie in [0, 1] (divide 0..255 data by 255, or pass uint8)")


def _exact(v: np.floating) -> str:
    """A float in the fewest digits that tell it from every other of its dtype: 1.0000001 past 1, not "1"."""
    return np.format_float_positional(v, unique=True, trim="-") if 1e-4 <= abs(float(v)) < 1e6 or v == 0 else str(v)
