"""Tensor helpers every layer shares, at the bottom of the package: it imports nothing of latentatlas, so a module
that needs them (a loss, the data's corruptions, the neighbour graph, a figure) closes no import circle through the
training loop, where they used to live."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

try:  # tqdm.auto draws a widget in a notebook; without ipywidgets it warns there and falls back to text anyway
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm import tqdm

__all__ = ["as_tensor", "quiet", "to_unit_float", "tqdm"]


def as_tensor(x) -> Tensor:
    """A tensor view of an array without copying it; read-only arrays are fine because nothing writes to them."""
    if isinstance(x, Tensor):
        return x
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(np.asarray(x))


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 0..255 -> float32 0..1; floats pass through as float32."""
    if x.dtype == torch.uint8:
        return x.float().mul_(1.0 / 255.0)
    return x.float()


def quiet(progress: bool | None) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` setting: None lets tqdm show a bar only on a terminal."""
    return None if progress is None else not progress
