"""How the estimator reads what it is given: its parameters as the settings' types (NumPy numbers, a RandomState,
tuples), and the arrays and labels of fit / transform / explore as NumPy (tensors, DataFrames, nested lists,
labels that are names)."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state

from .config import out_of_range, setting_kind
from .errors import LatentAtlasError


def _coerce(f, value):
    """A parameter as the setting's type: NumPy numbers as Python ones (GridSearchCV passes them), bools refused
    where a number is meant (by RunConfig's own checks), a RandomState or None drawn into a seed."""
    if f.name == "seed":
        return _seed(value)
    kind, several = setting_kind(f)
    if several:
        return _int_tuple(value)
    if kind is float:
        return None if value is None else _float(f, value)
    return _int(value)


def _int(value):
    """A NumPy integer as an int; anything else as given, for RunConfig to check (and refuse bools and floats)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _int_tuple(values):
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not np.iterable(values):
        raise LatentAtlasError(f"hidden_sizes={values!r} is not a sequence of integers, e.g. (392, 64)")
    return tuple(_int(v) for v in values)


def _float(f, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise out_of_range(f, value)  # the setting's own range, from the settings table
    return float(value)


def _seed(random_state) -> int:
    """An int is the seed itself (the CLI's --seed); a RandomState instance or None draws one."""
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool) and random_state >= 0:
        return int(random_state)
    raise LatentAtlasError(f"random_state={random_state!r} is out of range: it must be an integer >= 0, "
                           "a numpy RandomState or None")


def _json_param(value, seed: int):
    """A parameter as JSON: NumPy numbers and arrays as Python ones; a RandomState as the seed it drew."""
    if isinstance(value, np.random.RandomState):
        return seed
    if isinstance(value, (np.ndarray, tuple, list)):
        return [_json_param(v, seed) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    return value


def _to_numpy(X):
    if isinstance(X, torch.Tensor):
        return X.detach().cpu().numpy()
    return X


def _given(X):
    """``X`` and the dtype its values came in, which scikit-learn's conversion to float32 would lose: a DataFrame's
    (its columns' common dtype: uint8 pixels stay pixels), and for nested lists of Python ints, which carry none,
    uint8 where they fit 0..255 (``X.tolist()`` of uint8 images)."""
    if isinstance(X, (list, tuple)):
        try:
            a = np.asarray(X)
        except ValueError:  # ragged: scikit-learn says so in its words
            return X, None
        if np.issubdtype(a.dtype, np.integer) and a.size and 0 <= a.min() and a.max() <= 255:
            a = a.astype(np.uint8)
        return a, a.dtype
    dtypes = getattr(X, "dtypes", None)
    if getattr(X, "dtype", None) is None and dtypes is not None and len(dtypes):
        try:
            return X, np.result_type(*dtypes)
        except TypeError:  # pandas' own dtypes (nullable, categorical): as scikit-learn converts them
            return X, None
    return X, getattr(X, "dtype", None)


def _labels_or_none(y, n: int):
    """``y`` as an (n,) integer array where it is one (labels to colour points by), else None."""
    if y is None:
        return None
    y = np.asarray(_to_numpy(y))
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and y.min() < 0):
        return None
    return y


def _labels_and_names(y, n: int) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels to colour ``n`` points by, and their class names: integer labels as they are (no names), any other
    labels (strings, a pandas Categorical, booleans) as codes of their sorted distinct values, which name them.
    None: every point in class 0."""
    if y is None:
        return np.zeros(n, np.int64), None
    labels = _labels_or_none(y, n)
    if labels is not None:
        return labels, None
    values = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y, dtype=object)
    if values.shape != (n,) or any(v is None or (isinstance(v, float) and v != v) for v in values):
        raise LatentAtlasError(f"y: give one label per sample ({n}), integers >= 0 or names, none missing; or no y")
    names, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.int64), tuple(names.tolist())
