"""Run folders: everything written, reloadable without retraining, refused when they would be clobbered."""

import json

import numpy as np
import pytest
import torch

from latentatlas.config import RunConfig
from latentatlas.errors import LatentAtlasError
from latentatlas.metrics import encode
from latentatlas.run_training import train_run
from latentatlas.runs import evaluate_run, load_run

RUN_FILES = ["config.json", "model.safetensors", "history.json", "metrics.json", "latents.npz", "manifest.json",
             "checkpoint.safetensors", "checkpoint.json"]
METRIC_KEYS = ["n_params", "bce_test", "mse_test", "knn1", "knn5", "trustworthiness", "continuity", "train_seconds", "epochs"]


@pytest.fixture(scope="module")
def sphere_run(tmp_path_factory, small):
    cfg = RunConfig(preset="deep-s2", data="mnist-small", epochs=2)
    return train_run(cfg, tmp_path_factory.mktemp("runs") / "s2", dataset=small, progress=False)


def test_run_folder_contents(sphere_run):
    for name in RUN_FILES:
        assert (sphere_run.path / name).is_file(), name
    metrics = json.loads((sphere_run.path / "metrics.json").read_text())
    assert list(metrics) == METRIC_KEYS
    assert metrics["n_params"] == 692_264 and metrics["epochs"] == 2
    assert 0 < metrics["bce_test"] < 0.7 and 0 < metrics["mse_test"] < 0.25
    assert 0.1 < metrics["knn5"] <= 1 and 0.5 < metrics["trustworthiness"] <= 1 and 0.5 < metrics["continuity"] <= 1
    config = json.loads((sphere_run.path / "config.json").read_text())
    assert config["hidden_sizes"] == [392, 96] and config["geometry"] == "sphere" and config["device"] == "cpu"
    manifest = json.loads((sphere_run.path / "manifest.json").read_text())["files"]
    assert "model.safetensors" in manifest and "figures/encoder_map_equirectangular.png" in manifest


def test_figures_written_and_non_empty(sphere_run):
    figs = sphere_run.path / "figures"
    expected = ["loss_curves.png", "parameters.png", "reconstructions.png", "encoder_map_equirectangular.png",
                "decoder_grid_equirectangular.png", "latent_3d.png", "latent_3d.html"]
    for name in expected:
        f = figs / name
        assert f.is_file() and f.stat().st_size > 5_000, name
        if name.endswith(".png"):
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (figs / "latent_3d.html").read_text()
    assert "Plotly" in html and "cdn.plot.ly" not in html.split("<body>")[1][:2000]


def test_reload_gives_the_same_latents(sphere_run, small):
    run = load_run(sphere_run.path)
    saved = run.latents()
    np.testing.assert_array_equal(encode(run.model, small.flat("test")[0]), saved["z_test"])
    np.testing.assert_array_equal(saved["y_test"], small.y_test)
    np.testing.assert_allclose(np.linalg.norm(saved["z_test"], axis=1), 1, atol=1e-5)
    assert run.history == sphere_run.history


def test_evaluate_reproduces_the_metrics(sphere_run, small):
    before = json.loads((sphere_run.path / "metrics.json").read_text())
    after = evaluate_run(sphere_run.path, dataset=small)
    for k in METRIC_KEYS:
        assert after[k] == pytest.approx(before[k], rel=1e-6), k


def test_existing_folder_refused_without_overwrite(sphere_run, small):
    before = (sphere_run.path / "model.safetensors").read_bytes()
    with pytest.raises(LatentAtlasError, match="already exists.*overwrite=True"):
        train_run(RunConfig(preset="deep-2d", epochs=1), sphere_run.path, dataset=small, progress=False)
    assert (sphere_run.path / "model.safetensors").read_bytes() == before


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, small):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(LatentAtlasError, match="not a run folder"):
        train_run(RunConfig(epochs=1), tmp_path, dataset=small, overwrite=True, progress=False)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_bad_config_writes_nothing(tmp_path, small):
    with pytest.raises(LatentAtlasError):
        train_run(RunConfig(preset="nope"), tmp_path / "r", dataset=small)
    assert not (tmp_path / "r").exists()


def test_pickled_weights_refused(sphere_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sphere_run.path, run)
    torch.save(load_run(run).model.state_dict(), run / "model.safetensors")
    with pytest.raises(LatentAtlasError, match="pickle.*arbitrary code"):
        load_run(run)


def test_truncated_weights_clear_error(sphere_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sphere_run.path, run)
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LatentAtlasError, match="not a valid safetensors file"):
        load_run(run)


def test_unfinished_run_is_not_loaded_as_valid(sphere_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sphere_run.path, run)
    (run / "manifest.json").unlink()
    with pytest.raises(LatentAtlasError, match="did not finish.*resume=True"):
        load_run(run)


def test_non_finite_loss_keeps_the_last_good_checkpoint(tmp_path, small, monkeypatch):
    import latentatlas.run_training as runs

    good = runs.build_objective
    calls = {"n": 0}

    class Poisoned:
        def __init__(self, objective):
            self.objective = objective
            self.batch_sampler = objective.batch_sampler

        def loss_fn(self):
            fn = self.objective.loss_fn()

            def loss_fn(model, batch):
                calls["n"] += 1
                value, parts = fn(model, batch)
                # epoch 1 = 8 training batches + 1 test evaluation; call 12 is epoch 2, batch 3
                return (value * float("inf") if calls["n"] == 8 + 1 + 3 else value), parts

            return loss_fn

    monkeypatch.setattr(runs, "build_objective", lambda *args: Poisoned(good(*args)))
    out = tmp_path / "r"
    with pytest.raises(LatentAtlasError, match="non-finite at epoch 2, batch 3.*checkpoint is kept"):
        train_run(RunConfig(preset="deep-2d", epochs=3), out, dataset=small, progress=False)
    state = json.loads((out / "checkpoint.json").read_text())
    assert [r["epoch"] for r in state["history"]] == [1]
    assert not (out / "manifest.json").exists()


def test_the_same_weights_make_the_same_file_in_every_process(tmp_path):
    import subprocess
    import sys

    code = ("import sys, torch; from latentatlas.weights import save_weights; "
            "save_weights(sys.argv[1], {'b': torch.ones(2), 'a': torch.arange(3.0)})")
    files = [tmp_path / f"{i}.safetensors" for i in range(4)]
    for f in files:  # separate processes: safetensors' metadata order changed with each process's hash seed
        subprocess.run([sys.executable, "-c", code, str(f)], check=True, timeout=120)
    assert len({f.read_bytes() for f in files}) == 1
