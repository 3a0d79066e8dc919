"""latentatlas compare: presets + the width-matched control + PCA, mean and spread over seeds, on mnist-5k."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.decomposition import PCA

from latentatlas.cli import main
from latentatlas.compare import pca_metrics, summary
from latentatlas.data import load_dataset


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    r = CliRunner().invoke(main, ["compare", "--presets", "deep-2d,deep-3d,deep-3d-narrow,deep-s2", "--seeds", "2",
                                  "--data", "mnist-5k", "--epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_table_lists_every_model_with_mean_and_sd(compared):
    out, output = compared
    for model in ("deep-2d", "deep-3d", "deep-3d-narrow", "deep-s2", "pca-2", "pca-3"):
        assert model in output
    assert "±" in output and "5-NN" in output and "trust" in output
    rows = {r["model"]: r for r in csv.DictReader((out / "compare.csv").open())}
    assert rows["deep-2d"]["n"] == "2" and rows["pca-2"]["n"] == "1"
    assert float(rows["deep-s2"]["bce_test_sd"]) > 0  # two seeds really differ
    values = json.loads((out / "compare.json").read_text())["values"]
    assert len(values["deep-3d"]["knn5"]) == 2
    assert (out / "encoder_maps.png").stat().st_size > 10_000
    assert (out / "deep-s2" / "seed1" / "manifest.json").is_file()


def test_rerun_reuses_finished_runs(compared):
    out, _ = compared
    before = (out / "deep-2d" / "seed0" / "model.safetensors").stat().st_mtime_ns
    r = CliRunner().invoke(main, ["compare", "--presets", "deep-2d", "--seeds", "1", "--epochs", "1", "--out", str(out),
                                  "--no-pca"])
    assert r.exit_code == 0 and "training" not in r.output
    assert (out / "deep-2d" / "seed0" / "model.safetensors").stat().st_mtime_ns == before


def test_compare_existing_runs(compared):
    out, _ = compared
    r = CliRunner().invoke(main, ["compare", str(out / "deep-2d" / "seed0"), str(out / "deep-2d" / "seed1"),
                                  "--out", str(out / "again"), "--no-pca"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "again" / "compare.json").read_text())["summary"][0]["n"] == 2


def test_pca_baseline_against_its_definition():
    ds = load_dataset("digits")
    m = pca_metrics(ds, 2)
    xtr, xte = ds.flat("train")[0] / 255.0, ds.flat("test")[0] / 255.0
    pca = PCA(2).fit(xtr)
    assert m["mse_test"] == pytest.approx(np.mean((pca.inverse_transform(pca.transform(xte)) - xte) ** 2), rel=1e-5)
    assert m["n_params"] == 2 * 64 + 64 and 0.3 < m["knn5"] < 1


def test_summary_mean_and_sd():
    rows = summary({"m": {k: [1.0, 3.0] for k in ("n_params", "bce_test", "mse_test", "knn1", "knn5",
                                                   "trustworthiness", "train_seconds")}})
    assert rows[0]["bce_test_mean"] == 2.0 and rows[0]["bce_test_sd"] == pytest.approx(np.sqrt(2))
