"""Property tests: the readers parse random or mutated bytes, or raise LatentAtlasError; nothing else, no hang."""

import gzip
import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from idx_files import idx_bytes
from latentatlas.data import load_npz, parse_idx
from latentatlas.errors import LatentAtlasError

VALID_IDX = idx_bytes(np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5))
buf = io.BytesIO()
np.savez(buf, x_train=np.zeros((3, 4), np.uint8), y_train=np.arange(3), x_test=np.zeros((2, 4), np.uint8),
         y_test=np.arange(2))
VALID_NPZ = buf.getvalue()


def mutated(valid: bytes):
    """Flip, cut or extend a valid file."""
    flip = st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
        lambda t: valid[: t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1 :])
    cut = st.integers(0, len(valid) - 1).map(lambda n: valid[:n])
    extend = st.binary(min_size=1, max_size=64).map(lambda b: valid + b)
    return st.one_of(flip, cut, extend)


def parses_or_refuses(read, data):
    try:
        read(data)
    except LatentAtlasError:
        pass


@settings(max_examples=300, deadline=2000)
@given(st.one_of(st.binary(max_size=200), mutated(VALID_IDX), mutated(gzip.compress(VALID_IDX))))
def test_idx_reader(data):
    parses_or_refuses(parse_idx, data)


@settings(max_examples=150, deadline=2000)
@given(st.one_of(st.binary(max_size=300), mutated(VALID_NPZ)))
def test_npz_reader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "f.npz"
    path.write_bytes(data)
    parses_or_refuses(load_npz, path)
