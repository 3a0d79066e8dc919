"""How the estimator brings features to the network's inputs (pixels in [0, 1]) and back: a fitted object with its
own file in the saved folder (``scaling.json``), so that a new scaling is one class here and one entry in
``SCALINGS``, not a branch in each of the estimator's methods."""

from __future__ import annotations

import numpy as np

from .errors import LatentAtlasError, unknown_name

SCALING_FILE = "scaling.json"


class Pixels:
    """Pixels as they are: uint8 0..255 (kept as uint8, scaled per batch by the trainer) or floats in [0, 1]."""

    name = "pixels"
    keeps_uint8 = True  # uint8 input stays uint8: the trainer scales it per batch, never copying the whole array
    positive_only = True  # scikit-learn's tag: negative features are refused

    def fit(self, X: np.ndarray) -> Pixels:
        return self

    def transform(self, X: np.ndarray, given) -> np.ndarray:
        """``X`` (validated by scikit-learn; ``given`` its dtype as passed) as the network takes it."""
        from .data import check_pixels

        if X.dtype == np.uint8:
            return X
        try:
            check_pixels(X, "X")
        except LatentAtlasError:
            if given is not None and np.issubdtype(given, np.integer):  # 0..255 as int64, say: say so
                raise LatentAtlasError(f"X: integer pixels of dtype {given} must be uint8 0..255 (pass "
                                       "X.astype(np.uint8)) or floats in [0, 1]") from None
            raise
        return X

    def inverse(self, X: np.ndarray) -> np.ndarray:
        return X

    def state(self) -> dict:
        return {}


class MinMax(Pixels):
    """Each feature mapped affinely onto [0, 1] by the training data's minimum and range (a constant feature's
    range is taken as 1): any finite features."""

    name = "minmax"
    keeps_uint8 = False
    positive_only = False

    def __init__(self, data_min: np.ndarray | None = None, data_range: np.ndarray | None = None):
        self.data_min_, self.data_range_ = data_min, data_range

    def fit(self, X: np.ndarray) -> MinMax:
        lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
        self.data_min_, self.data_range_ = lo, np.where(hi > lo, hi - lo, 1.0)
        return self

    def transform(self, X: np.ndarray, given) -> np.ndarray:
        return ((X - self.data_min_) / self.data_range_).astype(np.float32)

    def inverse(self, X: np.ndarray) -> np.ndarray:
        return (X * self.data_range_ + self.data_min_).astype(np.float32)

    def state(self) -> dict:
        return {"data_min": self.data_min_.tolist(), "data_range": self.data_range_.tolist()}


SCALINGS: dict[str, type[Pixels]] = {Pixels.name: Pixels, MinMax.name: MinMax}
AUTO = "auto"  # pixels where the data are pixels, else minmax: any numeric matrix is taken, and the choice said
SCALING_CHOICES = (AUTO, *SCALINGS)


def is_pixels(X: np.ndarray) -> bool:
    """uint8, or finite floats within [0, 1]: what the network takes as it is."""
    if X.dtype == np.uint8:
        return True
    return bool(np.issubdtype(X.dtype, np.floating) and len(X) and np.isfinite(X).all() and X.min() >= 0
                and X.max() <= 1)


def fit_scaling(name: str, X: np.ndarray) -> tuple[Pixels, str | None]:
    """The scaling ``name`` (``SCALING_CHOICES``) fitted on the training samples ``X`` (N, D), and for ``auto``
    that did not take them as pixels, one line saying what it chose (else None)."""
    if name != AUTO:
        return get_scaling(name).fit(X), None
    if is_pixels(X):
        return Pixels(), None
    lo, hi = float(np.min(X)), float(np.max(X))
    return MinMax().fit(X), (f"scaling: the samples are not pixels (uint8, or floats in [0, 1]) but {X.dtype} over "
                             f"[{lo:.4g}, {hi:.4g}], so each feature is min-max scaled to [0, 1] by its training min "
                             "and max (scaling minmax)")


def get_scaling(name: str) -> Pixels:
    """A new, unfitted scaling by its name in ``SCALINGS``."""
    if not isinstance(name, str) or name not in SCALINGS:
        raise unknown_name("scaling", name, SCALINGS)
    return SCALINGS[name]()


def scaling_to_json(scaling: Pixels) -> dict:
    """A fitted scaling as the contents of ``scaling.json``."""
    return {"name": scaling.name, **scaling.state()}


def scaling_from_json(d: dict) -> Pixels:
    """A fitted scaling from ``scaling.json``, or from a folder saved before it had one (its ``minmax`` entry)."""
    scaling = get_scaling(d.get("name"))
    if "data_min" in d:
        scaling.data_min_ = np.asarray(d["data_min"], np.float64)
        scaling.data_range_ = np.asarray(d["data_range"], np.float64)
    return scaling
