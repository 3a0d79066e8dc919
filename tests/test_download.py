"""The sources' contract and constants, and the downloader against a local HTTP server: MD5 and SHA-256 checks,
unreachable, bad or cut-off mirrors, resuming. No test touches the internet."""

import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from idx_files import idx_bytes
from latentatlas.data import MNIST, SOURCES, FashionMNIST, load_dataset
from latentatlas.errors import LatentAtlasError


def test_every_source_keeps_the_contract():
    for key, source in SOURCES.items():
        assert source.name == key and isinstance(source.description, str)
        assert isinstance(source.available_offline(), bool) and callable(source.load)


def test_fashion_mnist_is_mnist_with_other_class_attributes():
    # torchvision's FashionMNIST(MNIST) pattern: no behaviour of its own to go wrong.
    assert not [k for k, v in vars(FashionMNIST).items() if callable(v) and not k.startswith("__")]


def test_fashion_mnist_checksums_match_debian_files():
    folder = Path(FashionMNIST.system_dirs[0])
    if not folder.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    for role, filename in FashionMNIST.files.items():
        assert hashlib.sha256(gzip.decompress((folder / filename).read_bytes())).hexdigest() == FashionMNIST.sha256[role]


def test_a_file_that_is_not_npz_is_refused_clearly(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(LatentAtlasError, match="must be an .npz.*for IDX files give their folder"):
        load_dataset(tmp_path / "train-images-idx3-ubyte.gz")


# --- the downloader ------------------------------------------------------------------------------------------------

ARRAYS = {"train_images": np.arange(2 * 28 * 28).reshape(2, 28, 28).astype(np.uint8),
          "train_labels": np.array([3, 7], np.uint8),
          "test_images": np.full((1, 28, 28), 9, np.uint8), "test_labels": np.array([1], np.uint8)}
PAYLOADS = {MNIST.files[role]: gzip.compress(idx_bytes(a), mtime=0) for role, a in ARRAYS.items()}


@pytest.fixture
def serve():
    """``serve(routes)`` -> base URL; a route maps a path to bytes, or to (bytes, Content-Length) to cut the body short."""
    servers = []

    def start(routes):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                route = routes.get(self.path, (b"", 0))
                body, length = route if isinstance(route, tuple) else (route, len(route))
                self.send_response(200 if self.path in routes else 404)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def source(tmp_path, monkeypatch):
    """MNIST as shipped (MD5 of the gz files), but with the test's checksums; the cache is tmp_path."""
    monkeypatch.setenv("LATENTATLAS_DATA", str(tmp_path))

    class Local(MNIST):
        name = "local-mnist"
        gz_md5 = {role: hashlib.md5(PAYLOADS[f]).hexdigest() for role, f in MNIST.files.items()}
        timeout = 5

    return Local


def cache_files(tmp_path):
    folder = tmp_path / "local-mnist"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_md5_verified_download(source, serve, tmp_path):
    source.mirrors = (serve({f"/{f}": b for f, b in PAYLOADS.items()}) + "/",)
    ds = source().load()
    np.testing.assert_array_equal(ds.x_train, ARRAYS["train_images"])
    assert cache_files(tmp_path) == sorted(PAYLOADS)


BAD_MIRRORS = {
    "garbage": lambda body: b"<html>captive portal</html>",
    "cut off mid-file": lambda body: (body[:10], len(body)),
    "tampered": lambda body: body[:-1] + bytes([body[-1] ^ 1]),
}


@pytest.mark.parametrize("bad", BAD_MIRRORS)
def test_a_bad_mirror_falls_through_to_the_next(source, serve, bad):
    bad_url = serve({f"/{f}": BAD_MIRRORS[bad](b) for f, b in PAYLOADS.items()})
    source.mirrors = (bad_url + "/", serve({f"/{f}": b for f, b in PAYLOADS.items()}) + "/")
    np.testing.assert_array_equal(source().load().y_train, ARRAYS["train_labels"])


def test_bad_files_everywhere_are_not_called_offline(source, serve, tmp_path):
    source.mirrors = (serve({f"/{f}": b"garbage" for f in PAYLOADS}) + "/",)
    with pytest.raises(LatentAtlasError, match="no mirror served a verified copy.*checksum mismatch") as e:
        source().load()
    assert "no network" not in str(e.value) and cache_files(tmp_path) == []


def test_404_everywhere_is_the_offline_error(source, serve):
    source.mirrors = (serve({}) + "/", serve({}) + "/")
    with pytest.raises(LatentAtlasError, match=r"no network\?.*mnist-5k.*last error: .*404") as e:
        source().load()
    assert "\n" not in str(e.value)


def test_oversized_response_is_cut_off(source, serve):
    source.max_bytes = 100
    source.mirrors = (serve({f"/{f}": b + b"\0" * 200 for f, b in PAYLOADS.items()}) + "/",)
    with pytest.raises(LatentAtlasError, match="larger than 100 bytes"):
        source().load()


def test_interrupted_download_resumes_and_leaves_no_temp_files(source, serve, tmp_path):
    last = MNIST.files["test_labels"]
    source.mirrors = (serve({f"/{f}": b for f, b in PAYLOADS.items() if f != last}) + "/",)
    with pytest.raises(LatentAtlasError, match=last):
        source().load()
    assert cache_files(tmp_path) == sorted(f for f in PAYLOADS if f != last)  # verified files kept, nothing else
    source.mirrors = (serve({f"/{last}": PAYLOADS[last]}) + "/",)  # only the missing file is fetched
    np.testing.assert_array_equal(source().load().y_test, ARRAYS["test_labels"])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sha256_verified_download_skips_dead_mirrors(serve, tmp_path, monkeypatch):
    """The Fashion-MNIST path: SHA-256 of the decompressed bytes; an unreachable mirror and a 404 come first."""
    monkeypatch.setenv("LATENTATLAS_DATA", str(tmp_path))

    class Local(FashionMNIST):
        name = "local-fashion"
        system_dirs = ()
        sha256 = {role: hashlib.sha256(idx_bytes(a)).hexdigest() for role, a in ARRAYS.items()}
        gz_md5 = {}  # the SHA-256 path alone
        timeout = 5

    url = serve({f"/ok/{f}": b for f, b in PAYLOADS.items()})
    Local.mirrors = (f"http://127.0.0.1:{closed_port()}/", url + "/missing/", url + "/ok/")
    ds = Local().load()
    np.testing.assert_array_equal(ds.y_train, ARRAYS["train_labels"])
    assert Local().available_offline()  # cached now: the next load needs no server
    np.testing.assert_array_equal(Local().load().x_test, ARRAYS["test_images"])
