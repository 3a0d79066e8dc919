"""The CLI end to end on mnist-5k, and its one-line errors."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from latentatlas.cli import main, train
from latentatlas.config import RunConfig


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_train_evaluate_plot_end_to_end(tmp_path):
    out = tmp_path / "run"
    r = invoke("train", "--preset", "deep-s2", "--data", "mnist-5k", "--epochs", "1", "--out", out)
    assert r.exit_code == 0, r.output
    assert "knn5" in r.output and (out / "manifest.json").is_file()
    r = invoke("evaluate", out)
    assert r.exit_code == 0 and "trustworthiness" in r.output
    r = invoke("plot", out, "--glyphs")
    assert r.exit_code == 0 and "encoder_map_equirectangular.png" in r.output
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1


def test_train_flags_are_the_config_names():
    flags = {p.name for p in train.params} - {"out", "overwrite", "resume"}
    assert flags == {f.name for f in dataclasses.fields(RunConfig)} - {"extra"}


def test_presets_lists_parameter_counts():
    r = invoke("presets")
    assert r.exit_code == 0
    assert "666,791" in r.output and "3,768,682" in r.output and "3,923" in r.output


def test_datasets_lists_offline_sources():
    r = invoke("datasets")
    assert r.exit_code == 0 and "mnist-5k" in r.output and "offline" in r.output


@pytest.mark.parametrize("args,message", [
    (["train", "--preset", "deep-9d"], "unknown preset 'deep-9d': choose one of"),
    (["train", "--geometry", "torus"], "unknown geometry 'torus': choose one of euclidean, sphere"),
    (["train", "--data", "imagenet"], "imagenet"),
    (["train", "--geometry", "sphere", "--latent-dim", "1"], "latent_dim=1 is not possible for the sphere"),
    (["train", "--lr", "-1"], "lr=-1.0 is out of range"),
    (["evaluate", "no/such/run"], "not a run folder"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    r = CliRunner().invoke(main, [*args, *(["--out", str(tmp_path / "r")] if args[0] == "train" else [])])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "r").exists()


def test_existing_run_folder_exit_2(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{}")
    r = CliRunner().invoke(main, ["train", "--epochs", "1", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--overwrite" in r.output


def test_debug_shows_the_traceback(tmp_path):
    r = CliRunner().invoke(main, ["--debug", "train", "--preset", "nope", "--out", str(tmp_path / "r")])
    assert r.exit_code != 0 and r.exception is not None


def test_demo_prints_the_comparison_table(tmp_path):
    r = invoke("demo", "--epochs", "1", "--out", tmp_path / "demo")
    assert r.exit_code == 0, r.output
    for name in ("deep-2d", "deep-3d", "deep-s2", "test BCE", "5-NN", "692,264"):
        assert name in r.output
    assert (tmp_path / "demo" / "deep-s2" / "figures" / "decoder_grid_equirectangular.png").is_file()


@pytest.mark.parametrize("content,message", [
    (b"PK\x03\x04" + b"\x00" * 30, "not a valid .npz file"),
    (b"not a zip", "not a valid .npz file (not a zip archive)"),
])
def test_corrupt_data_file_exit_2(tmp_path, content, message):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    r = CliRunner().invoke(main, ["train", "--data", str(bad), "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
