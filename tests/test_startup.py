"""The command line starts fast: its module and the cheap commands never import torch, matplotlib, plotly or
scikit-learn (about 2 s of a newcomer's every `--help` before they were imported lazily)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEAVY = ("torch", "matplotlib", "plotly", "sklearn", "scipy")


def _imported_after(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[-2].split()


def test_importing_the_cli_imports_no_heavy_library():
    assert _imported_after("import latentatlas.cli") == []


@pytest.mark.parametrize("args", [["--help"], ["presets"], ["datasets"], ["train", "--help"],
                                  ["train", "--preset", "deep-s3"]])
def test_cheap_commands_import_no_heavy_library(args):
    code = ("import sys\nfrom latentatlas.cli import main\n"
            f"try:\n    main({args!r}, standalone_mode=False)\nexcept BaseException:\n    pass")
    assert _imported_after(code) == []


def test_a_missing_data_file_and_a_bad_out_are_refused_before_torch_is_imported(tmp_path):
    (tmp_path / "a-file").write_text("")
    for args, said in ([["train", "--data", str(tmp_path / "rates.npz")], "rates.npz: no such file or folder"],
                       [["train", "--data", "digits", "--out", str(tmp_path / "a-file")], "a-file is a file"]):
        code = ("import sys\nfrom latentatlas.cli import main\n"
                f"try:\n    main({args!r}, standalone_mode=False)\nexcept BaseException:\n    pass")
        assert _imported_after(code) == [], args
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        r = subprocess.run([sys.executable, "-m", "latentatlas", *args], env=env, capture_output=True, text=True)
        assert r.returncode == 2 and said in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_the_package_still_offers_the_estimator():
    import latentatlas

    assert latentatlas.Autoencoder.__name__ == "Autoencoder"
    with pytest.raises(AttributeError):
        latentatlas.no_such_thing


def test_pyproject_license_is_an_spdx_string():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"  # PEP 639; the table form makes setuptools warn
    assert "latentatlas[onnx,tensorboard,sweep,maps,graph]" in meta["project"]["optional-dependencies"]["test"]
