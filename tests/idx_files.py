"""Test helpers: builders of IDX files, and the shared pieces of the property tests."""

import gzip
import struct

import numpy as np
from hypothesis import strategies as st

from latentatlas.errors import LatentAtlasError

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
         np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(a: np.ndarray, gz: bool = False) -> bytes:
    a = np.asarray(a)
    big = a.astype(a.dtype.newbyteorder(">")) if a.dtype.itemsize > 1 else a
    raw = bytes([0, 0, CODES[big.dtype], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + big.tobytes()
    return gzip.compress(raw) if gz else raw


def write_mnist_folder(folder, n_train=20, n_test=10, gz=True, seed=0):
    """Four MNIST-style files of random 28 x 28 images; returns (x_train, y_train, x_test, y_test)."""
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8))
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in zip(names, arrays):
        (folder / (name + (".gz" if gz else ""))).write_bytes(idx_bytes(a, gz))
    return arrays


def mutated(valid: bytes):
    """A hypothesis strategy: ``valid`` with one byte flipped, cut short, or extended."""
    flip = st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
        lambda t: valid[: t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1 :])
    return st.one_of(flip, st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
                     st.binary(min_size=1, max_size=64).map(lambda b: valid + b))


def works_or_refuses(call, *args):
    """Call; a LatentAtlasError (one line) is an allowed outcome, any other exception fails the test."""
    try:
        return call(*args)
    except LatentAtlasError as e:
        assert "\n" not in str(e)
