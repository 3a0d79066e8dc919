"""latentatlas compare: presets + the width-matched control + PCA, mean and spread over seeds, on mnist-5k."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.decomposition import PCA

from latentatlas.cli import main
from latentatlas.experiments.compare import METRICS, format_table, pca_metrics, summary, write_outputs
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.runs import train_run


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


def test_rerun_refuses_a_run_with_other_settings(compared):
    out, _ = compared
    before = (out / "deep-2d" / "seed0" / "model.safetensors").stat().st_mtime_ns
    r = CliRunner().invoke(main, ["compare", "--presets", "deep-2d", "--seeds", "1", "--data", "digits", "--epochs",
                                  "2", "--out", str(out), "--no-pca"])
    assert r.exit_code == 2 and "training" not in r.output
    assert str(out / "deep-2d" / "seed0") in r.output and "epochs 1 there, 2 now" in r.output
    assert "data 'mnist-5k' there, 'digits' now" in r.output and "--out" in r.output
    assert (out / "deep-2d" / "seed0" / "model.safetensors").stat().st_mtime_ns == before


def test_compare_existing_runs(compared):
    out, _ = compared
    r = CliRunner().invoke(main, ["compare", str(out / "deep-2d" / "seed0"), str(out / "deep-2d" / "seed1"),
                                  "--out", str(out / "again"), "--no-pca"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "again" / "compare.json").read_text())["summary"][0]["n"] == 2


def test_runs_on_other_data_are_other_models(compared, tmp_path):
    out, _ = compared
    digits = train_run(RunConfig(preset="deep-2d", data="digits", epochs=1), tmp_path / "digits", plot=False).path
    seeds = [str(out / "deep-2d" / "seed0"), str(out / "deep-2d" / "seed1")]
    r = CliRunner().invoke(main, ["compare", *seeds, str(digits), "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    rows = {r["model"]: r for r in csv.DictReader((tmp_path / "cmp" / "compare.csv").open())}
    assert {m: row["n"] for m, row in rows.items()} == {
        "deep-2d data=mnist-5k": "2", "deep-2d data=digits": "1", "pca-2 data=mnist-5k": "1",
        "pca-3 data=mnist-5k": "1", "pca-2 data=digits": "1", "pca-3 data=digits": "1"}
    assert float(rows["pca-2 data=digits"]["n_params_mean"]) == 2 * 64 + 64  # PCA fitted on the digits' own data
    r = CliRunner().invoke(main, ["compare", seeds[0], seeds[0], "--out", str(tmp_path / "twice"), "--no-pca"])
    assert r.exit_code == 2 and "same settings and seed" in r.output


def test_bad_input_trains_nothing(tmp_path):
    args = ["compare", "--seeds", "1", "--data", "digits", "--epochs", "1", "--no-pca"]
    r = CliRunner().invoke(main, [*args, "--presets", "deep-2d,nope", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "unknown preset 'nope'" in r.output and not (tmp_path / "a").exists()
    (tmp_path / "b" / "deep-3d" / "seed0").mkdir(parents=True)
    (tmp_path / "b" / "deep-3d" / "seed0" / "notes.txt").write_text("mine")
    r = CliRunner().invoke(main, [*args, "--presets", "deep-2d,deep-3d", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "not a run folder" in r.output and not (tmp_path / "b" / "deep-2d").exists()


@pytest.mark.parametrize("presets, pca", [("", "--pca"), (" , ", "--no-pca")])
def test_no_presets(tmp_path, presets, pca):
    r = CliRunner().invoke(main, ["compare", "--presets", presets, "--seeds", "1", "--data", "digits", pca,
                                  "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "error: no presets given" in r.output and not (tmp_path / "c").exists()


def test_pca_baseline_against_its_definition():
    ds = load_dataset("digits")
    m = pca_metrics(ds, 2)
    xtr, xte = ds.flat("train")[0] / 255.0, ds.flat("test")[0] / 255.0
    pca = PCA(2).fit(xtr)
    # Its reconstruction clipped to (0, 1), as BCE needs and every model's sigmoid gives (metrics.evaluate's protocol).
    recon = np.clip(pca.inverse_transform(pca.transform(xte)), 1e-7, 1 - 1e-7)
    assert m["mse_test"] == pytest.approx(np.mean((recon - xte) ** 2), rel=1e-5)
    assert m["n_params"] == 2 * 64 + 64 and 0.3 < m["knn5"] < 1


def test_summary_mean_and_sd():
    rows = summary({"m": {k: [1.0, 3.0] for k in ("n_params", "bce_test", "mse_test", "knn1", "knn5",
                                                   "trustworthiness", "train_seconds")}})
    assert rows[0]["bce_test_mean"] == 2.0 and rows[0]["bce_test_sd"] == pytest.approx(np.sqrt(2))


def test_one_seed_has_no_spread(tmp_path):
    results = {"m": {k: [1.0] for k in METRICS}}
    rows = summary(results)
    assert rows[0]["bce_test_mean"] == 1.0 and rows[0]["bce_test_sd"] is None
    assert "±" not in format_table(rows) and "1.0000" in format_table(rows)
    write_outputs(results, tmp_path)
    assert json.loads((tmp_path / "compare.json").read_text())["summary"][0]["bce_test_sd"] is None
    assert next(csv.DictReader((tmp_path / "compare.csv").open()))["bce_test_sd"] == ""  # CSV's null
