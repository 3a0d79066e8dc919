"""The data set type every source returns, and the pixel rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
    scaling_note: str | None = None  # what ``scaling="auto"`` chose, where it did not take the samples as pixels
    factors_label: str = "true angles (rad)"  # what the factors are, for a colour bar
    # Other per-sample values of the test set by name (an .npz's ``NAME_test`` arrays), to colour maps by.
    values_test: dict = field(default_factory=dict)

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
            check_numbers(x, f"{self.name} ({split})")
            f = getattr(self, f"factors_{split}")
            if f is not None and (f.ndim != 2 or len(f) != len(x)):
                raise LatentAtlasError(f"{self.name}: {len(x)} {split} samples but true factors of shape {f.shape}")
        for name, v in self.values_test.items():
            if len(v) != len(self.x_test):
                raise LatentAtlasError(f"{self.name}: {len(self.x_test)} test samples but {len(v)} values {name!r}")
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


def check_numbers(x: np.ndarray, what: str) -> None:
    """Any finite numbers (pixels, firing rates, features) in the machine's byte order; scaling makes them inputs."""
    if x.dtype == np.uint8:
        return
    if (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)) and not x.dtype.isnative:
        raise LatentAtlasError(f"{what}: values of dtype {x.dtype.str} ({'big' if x.dtype.byteorder == '>' else 'little'}-endian): "
                               f"store them in this machine's byte order (a.astype('{x.dtype.newbyteorder('=').str}'))")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)) or x.dtype == np.bool_:
        raise LatentAtlasError(f"{what}: values of dtype {x.dtype}: give numbers (uint8 pixels, floats, integers)")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise LatentAtlasError(f"{what}: the data contain NaN or infinite values")


def scale(dataset: Dataset, scaling: str) -> Dataset:
    """``dataset`` with its samples as the network takes them, by the scaling ``scaling`` (``scaling.SCALINGS`` or
    auto) fitted on the training split; pixels stay as they are (uint8 too)."""
    import dataclasses

    from ..scaling import Pixels, fit_scaling

    fitted, note = fit_scaling(scaling, dataset.x_train.reshape(len(dataset.x_train), -1))
    if isinstance(fitted, Pixels) and fitted.name == Pixels.name:
        for split in ("train", "test"):
            check_pixels(getattr(dataset, f"x_{split}"), f"{dataset.name} ({split})")
        return dataset
    x = {f"x_{split}": fitted.transform(a.reshape(len(a), -1), a.dtype).reshape(a.shape)
         for split, a in (("train", dataset.x_train), ("test", dataset.x_test))}
    return dataclasses.replace(dataset, **x, scaling_note=note)


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
        raise LatentAtlasError(f"{what}: Negative values in data passed to latentatlas (min {_exact(lo)}): pixels must lie in [0, 1], or pass uint8 0..255, or scale them (scaling minmax or auto)")
    if hi > 1:
        raise LatentAtlasError(f"{what}: float pixels range over [{_exact(lo)}, {_exact(hi)}]: floats must lie in [0, 1] (divide 0..255 data by 255, or pass uint8), or scale them (scaling minmax or auto)")


def _exact(v: np.floating) -> str:
    """A float in the fewest digits that tell it from every other of its dtype: 1.0000001 past 1, not "1"."""
    return np.format_float_positional(v, unique=True, trim="-") if 1e-4 <= abs(float(v)) < 1e6 or v == 0 else str(v)
