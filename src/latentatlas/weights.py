"""Weights as safetensors (tensors) + JSON (everything else); loading never executes code."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save_file

from ._version import __version__
from ._io import atomic_write, is_utf8
from .errors import LatentAtlasError

_PICKLE_HINT = "it looks like a pickle (a PyTorch .pt/.pth file); latentatlas loads only safetensors, because loading a pickle can run arbitrary code"


def save_weights(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``tensors`` to a safetensors file atomically; the same tensors always give the same bytes.

    The header's metadata is one key, ``{"latentatlas": version}``: safetensors writes several keys in an order
    that changes from process to process, and a resumed run must hash like the uninterrupted one.
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}

    def write(tmp: str) -> None:
        try:
            save_file(tensors, tmp, metadata={"latentatlas": __version__})
        except SafetensorError as e:  # a full disk or a file-size limit, in the Rust library's words
            raise LatentAtlasError(f"{path}: cannot write the weights ({str(e).splitlines()[0]})") from None

    return atomic_write(path, write)


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file; refuse pickles and report corrupt or truncated files in one line."""
    path = Path(path)
    if not path.is_file():
        raise LatentAtlasError(f"{path}: weights file not found")
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header's "{".
    if head[8:9] != b"{" and (head[:1] == b"\x80" or head[:2] == b"PK"):  # pickle protocol >= 2, or torch.save's zip
        raise LatentAtlasError(f"{path}: refused: {_PICKLE_HINT}")
    try:
        tensors = load_file(path) if is_utf8(path) else load(path.read_bytes())  # the library takes UTF-8 names only
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LatentAtlasError(f"{path}: not a valid safetensors file (corrupt or truncated: {msg})") from None
    # What latentatlas writes is real floating point and finite (training stops at the first non-finite loss):
    # anything else was put there by hand, and would be cast, or computed with, silently.
    for name, t in tensors.items():
        if not t.is_floating_point():
            raise LatentAtlasError(f"{path}: {name} is {str(t.dtype).removeprefix('torch.')}: latentatlas weights "
                                   "are real floating-point numbers")
        if not torch.isfinite(t).all():
            raise LatentAtlasError(f"{path}: {name} holds NaN or infinite values")
    return tensors
