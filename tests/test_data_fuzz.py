"""Property tests beyond tests/test_readers_fuzz.py: damage behind a valid gzip layer, damaged IDX folders, arbitrary
arrays given to Dataset, and arbitrary bytes from a mirror. Each either works or raises LatentAtlasError."""

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from idx_files import idx_bytes, mutated, works_or_refuses, write_mnist_folder
from latentatlas.data import Dataset, FashionMNIST, MNIST, load_idx_folder, read_idx

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALID_IDX = idx_bytes(np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4))


@FUZZ
@given(data=mutated(VALID_IDX))
def test_damage_inside_a_valid_gzip(tmp_path, data):
    # Mutating the .gz itself mostly trips its CRC; re-compressing puts the damage in front of the IDX parser.
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data))
    a = works_or_refuses(read_idx, path)
    assert a is None or a.size * a.itemsize == len(data) - 4 - 4 * a.ndim


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("idx")
    write_mnist_folder(folder, n_train=4, n_test=2, gz=False)
    return folder


@FUZZ
@given(filename=st.sampled_from(["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                 "t10k-labels-idx1-ubyte"]), data=st.data())
def test_damaged_idx_folder(folder, filename, data):
    good = (folder / filename).read_bytes()
    try:
        (folder / filename).write_bytes(data.draw(mutated(good)))
        works_or_refuses(load_idx_folder, folder)
    finally:
        (folder / filename).write_bytes(good)


DTYPES = st.sampled_from([np.uint8, np.int8, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)


@FUZZ
@given(data=st.data(), sizes=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       image_shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3),
       pixels=st.sampled_from([np.uint8, np.float32]), broken=st.sampled_from([None, 0, 1, 2, 3]))
def test_dataset_from_arbitrary_arrays(data, sizes, image_shape, pixels, broken):
    # Arrays as a valid Dataset needs them, but one of them (``broken``) of any dtype, shape and values; random
    # arrays alone would almost never be accepted, leaving the invariants below unchecked.
    wanted = [(pixels, (sizes[0], *image_shape)), (np.int64, (sizes[0],)),
              (pixels, (sizes[1], *image_shape)), (np.int64, (sizes[1],))]
    arrays = [data.draw(hnp.arrays(DTYPES, SHAPES) if i == broken else
                        hnp.arrays(dtype, shape, elements=st.floats(0, 1, width=32) if dtype == np.float32 else None))
              for i, (dtype, shape) in enumerate(wanted)]
    ds = works_or_refuses(Dataset, "fuzz", *arrays)
    event("accepted" if ds is not None else "refused")
    if ds is not None:  # what was accepted holds the documented invariants
        for split in ("train", "test"):
            x, y = ds.flat(split)
            assert x.shape == (len(y), ds.n_features) and len(y) > 0 and np.issubdtype(y.dtype, np.integer)
            assert x.dtype == np.uint8 or (np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1)


@FUZZ
@given(source=st.sampled_from([MNIST(), FashionMNIST()]), role=st.sampled_from(list(MNIST.files)),
       payload=st.one_of(st.binary(max_size=300), mutated(gzip.compress(VALID_IDX))))
def test_a_mirror_serving_anything_is_refused_in_words(source, role, payload):
    assert isinstance(source._verify(role, payload), str)
