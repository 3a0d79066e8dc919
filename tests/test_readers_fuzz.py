"""Property tests: the readers parse random or mutated bytes, or raise LatentAtlasError; nothing else, no hang."""

import gzip
import io

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from idx_files import idx_bytes, mutated, works_or_refuses
from latentatlas.data import load_npz, parse_idx

VALID_IDX = idx_bytes(np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5))
buf = io.BytesIO()
np.savez(buf, x_train=np.zeros((3, 4), np.uint8), y_train=np.arange(3), x_test=np.zeros((2, 4), np.uint8),
         y_test=np.arange(2))
VALID_NPZ = buf.getvalue()


@settings(max_examples=300, deadline=2000)
@given(st.one_of(st.binary(max_size=200), mutated(VALID_IDX), mutated(gzip.compress(VALID_IDX))))
# a gzip stream whose header says an empty array, with more bytes decompressed past it (found by hypothesis in CI)
@example(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x00b`\xe0`\x12`\x00\x01\x02\x00")
def test_idx_reader(data):
    works_or_refuses(parse_idx, data)


@settings(max_examples=150, deadline=2000)
@given(st.one_of(st.binary(max_size=300), mutated(VALID_NPZ)))
def test_npz_reader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "f.npz"
    path.write_bytes(data)
    works_or_refuses(load_npz, path)
