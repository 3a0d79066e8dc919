"""ONNX export against the oracle: onnxruntime's outputs match torch's within 1e-5."""

import numpy as np
import pytest
from click.testing import CliRunner

from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.metrics import decode, encode
from latentatlas.run_training import train_run
from latentatlas.runs import load_run

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install latentatlas[onnx])")


@pytest.mark.parametrize("preset", ["deep-2d", "deep-s2"])
def test_onnx_matches_torch(tmp_path, small, preset):
    run = train_run(RunConfig(preset=preset, epochs=1), tmp_path / "r", dataset=small, plot=False, progress=False)
    r = CliRunner().invoke(main, ["export", str(run.path), "--onnx"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in run.path.glob("*.onnx")) == ["decoder.onnx", "encoder.onnx"]
    assert not list(run.path.glob("*.data"))  # single files, no side-car weights
    model = load_run(run.path).model
    x = small.flat("test")[0][:57].astype(np.float32) / 255
    z = ort.InferenceSession(str(run.path / "encoder.onnx")).run(None, {"pixels": x})[0]
    np.testing.assert_allclose(z, encode(model, x), atol=1e-5)
    grid = np.random.default_rng(0).normal(size=(33, model.geometry.dim)).astype(np.float32)
    images = ort.InferenceSession(str(run.path / "decoder.onnx")).run(None, {"latent": grid})[0]
    np.testing.assert_allclose(images, decode(model, grid), atol=1e-5)


def test_export_needs_a_format(tmp_path):
    r = CliRunner().invoke(main, ["export", str(tmp_path)])
    assert r.exit_code == 2 and "--onnx" in r.output


def test_export_prints_the_files_and_nothing_else(tmp_path, small):
    import subprocess
    import sys

    run = train_run(RunConfig(preset="shallow-2d", epochs=1), tmp_path / "r", dataset=small, plot=False,
                    progress=False)
    p = subprocess.run([sys.executable, "-m", "latentatlas", "export", str(run.path), "--onnx", "--out",
                        str(tmp_path / "x")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [str(tmp_path / "x" / "encoder.onnx"), str(tmp_path / "x" / "decoder.onnx")]
    assert p.stderr == ""  # none of the exporter's notes about torchvision or torch internals
