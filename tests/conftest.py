import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run the slow quality-threshold training runs")
    parser.addoption("--cpu", choices=("native", "avx2"), default="native",
                     help="avx2: cap PyTorch's libraries at AVX2 (latentatlas.hardware.AVX2_ONLY) as on most "
                          "laptops, so that `auto` trains in fp32 and floats come from other kernels")


def pytest_configure(config):
    if config.getoption("--cpu") == "avx2":
        import os

        from latentatlas.hardware import AVX2_ONLY

        if "torch" in __import__("sys").modules:  # the caps are read once, when torch's libraries start
            raise pytest.UsageError("--cpu avx2: torch was imported before the caps could be set")
        os.environ.update(AVX2_ONLY)  # subprocesses (the CLI tests) inherit them too


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow quality check: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist5k():
    from latentatlas.data import load_dataset

    return load_dataset("mnist-5k")


@pytest.fixture(scope="session")
def small(mnist5k):
    """1,000 train / 300 test images of mnist-5k: enough to learn something in a second."""
    from latentatlas.data import Dataset

    return Dataset("mnist-small", mnist5k.x_train[:1000], mnist5k.y_train[:1000], mnist5k.x_test[:300],
                   mnist5k.y_test[:300])


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A small .npz of 8 x 8 digits (240 train / 60 test): a run trains, evaluates and draws in about a second."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * (255 / 16)).astype(np.uint8)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=x[:240], y_train=d.target[:240], x_test=x[240:300], y_test=d.target[240:300])
    return path


@pytest.fixture(scope="session")
def base_run(tmp_path_factory, tiny):
    """A finished shallow-2d run of ``tiny`` (1 epoch, CPU), trained by the CLI; tests copy it, never change it."""
    from click.testing import CliRunner

    from latentatlas.cli import main

    out = tmp_path_factory.mktemp("base") / "run"
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--data", str(tiny), "--epochs", "1",
                                  "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """``latentatlas demo --epochs 1``, run once as a user would in a batch job, its output (stdout and stderr) to a
    file, progress lines at every epoch (LATENTATLAS_PROGRESS_EVERY=0): (its folder, what it printed).

    Its runs (deep-2d, deep-3d, deep-s2 on mnist-5k) and report serve every test that needs trained runs of the
    three kinds of latent space; tests that change a run work on a copy."""
    import os
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("demo")
    log = root.parent / "demo.log"
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, "-m", "latentatlas", "demo", "--epochs", "1", "--out", str(root)], stdout=f,
                           stderr=subprocess.STDOUT, env={**os.environ, "LATENTATLAS_PROGRESS_EVERY": "0"}, timeout=900)
    assert r.returncode == 0, log.read_text()[-3000:]
    return root, log.read_text()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; skipped where it is missing, unless LATENTATLAS_REQUIRE_BROWSER=1
    (CI sets it, so there a missing browser fails instead of hiding the browser tests)."""
    from browser import launch_chromium

    with launch_chromium() as b:
        yield b
