"""Named data sets, and the downloader against a local HTTP server (no test touches the internet)."""

import gzip
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest

from idx_files import idx_bytes
from latentatlas.data import MNIST, SOURCES, available_datasets, load_dataset
from latentatlas.errors import LatentAtlasError


def test_mnist5k_split():
    ds = load_dataset("mnist-5k")
    assert ds.x_train.shape == (4000, 28, 28) and ds.x_test.shape == (1000, 28, 28) and ds.x_train.dtype == np.uint8
    assert (np.bincount(ds.y_train) == 400).all() and (np.bincount(ds.y_test) == 100).all()
    again = load_dataset("mnist-5k")
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    train_rows = {r.tobytes() for r in ds.x_train.reshape(4000, -1)}
    assert not any(r.tobytes() in train_rows for r in ds.x_test.reshape(1000, -1))


def test_digits_scaled_to_uint8():
    ds = load_dataset("digits")
    assert ds.image_shape == (8, 8) and ds.x_train.dtype == np.uint8
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    assert set(np.unique(ds.x_train)) <= {round(v * 255 / 16) for v in range(17)}


def test_fashion_mnist_from_debian_files():
    if not SOURCES["fashion-mnist"].available_offline():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.classes[9] == "Ankle boot" and (np.bincount(ds.y_test) == 1000).all()


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(LatentAtlasError) as e:
        load_dataset("imagenet")
    for name in SOURCES:
        assert name in str(e.value)


def test_available_datasets():
    rows = {name: offline for name, offline, _ in available_datasets()}
    assert rows["mnist-5k"] and rows["digits"]


# --- the downloader ------------------------------------------------------------------------------------------------

ARRAYS = {"train_images": np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28) % 251,
          "train_labels": np.array([1, 2, 3], np.uint8),
          "test_images": np.ones((2, 28, 28), np.uint8), "test_labels": np.array([4, 5], np.uint8)}


class Server:
    """Serves {path: bytes} on 127.0.0.1; other paths get 404."""

    def __init__(self, files):
        files = dict(files)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def source(tmp_path, monkeypatch):
    """An MNIST source whose mirrors and checksums belong to the test's files; the cache is tmp_path."""
    monkeypatch.setenv("LATENTATLAS_DATA", str(tmp_path))
    payloads = {role: gzip.compress(idx_bytes(a)) for role, a in ARRAYS.items()}

    class TestMNIST(MNIST):
        name = "test-mnist"
        sha256 = {role: hashlib.sha256(idx_bytes(a)).hexdigest() for role, a in ARRAYS.items()}
        timeout = 5

    TestMNIST.payloads = {TestMNIST.files[role]: p for role, p in payloads.items()}
    return TestMNIST


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_verifies_and_caches(source, tmp_path):
    server = Server({f"/m/{name}": body for name, body in source.payloads.items()})
    try:
        source.mirrors = (f"http://127.0.0.1:{closed_port()}/", server.url + "/missing/", server.url + "/m/")
        ds = source().load()
    finally:
        server.close()
    np.testing.assert_array_equal(ds.x_train, ARRAYS["train_images"])
    assert sorted(p.name for p in (tmp_path / "test-mnist").iterdir()) == sorted(source.payloads)
    assert source().available_offline()
    np.testing.assert_array_equal(source().load().y_test, ARRAYS["test_labels"])  # now from the cache, no server


def test_checksum_mismatch_everywhere_leaves_nothing(source, tmp_path):
    tampered = {f"/m/{name}": gzip.compress(gzip.decompress(body)[:-1] + b"\x07") for name, body in source.payloads.items()}
    server = Server(tampered)
    try:
        source.mirrors = (server.url + "/m/",)
        with pytest.raises(LatentAtlasError, match="no mirror served a verified copy.*checksum mismatch"):
            source().load()
    finally:
        server.close()
    folder = tmp_path / "test-mnist"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_no_network_is_one_line_naming_the_offline_choices(source):
    source.mirrors = (f"http://127.0.0.1:{closed_port()}/",)
    with pytest.raises(LatentAtlasError, match="no network.*mnist-5k, digits, fashion-mnist") as e:
        source().load()
    assert "\n" not in str(e.value)
