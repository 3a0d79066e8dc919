"""latentatlas compare: presets + the width-matched control + baselines (PCA, UMAP, t-SNE), mean and spread over
seeds, on mnist-5k; the baselines' protocol on the digits."""

import csv
import json
import sys
from importlib.util import find_spec

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier

from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError
from latentatlas.experiments.baselines import (BASELINES, Baseline, baseline_metrics, fit_baseline, pca_metrics,
                                               resolve_baselines)
from latentatlas.experiments.compare import compare, compare_runs
from latentatlas.experiments.compare_outputs import columns as compared_columns, compared_keys, encoder_maps_figure, format_table, summary, write_outputs
from latentatlas.metrics import ALWAYS
from latentatlas.metrics import trust_subset
from latentatlas.run_training import train_run
from latentatlas.runs import load_run

METRICS = compared_keys()  # the table's metric keys

maps = pytest.mark.skipif(find_spec("umap") is None or find_spec("openTSNE") is None,
                          reason="the maps extra is not installed (pip install latentatlas[maps])")


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
    assert float(rows["pca-2"]["train_seconds_mean"]) > 0  # a baseline's fit time, as a model's training time
    assert "fitting pca-3 on 4,000 images ..." in output
    assert float(rows["deep-s2"]["bce_test_sd"]) > 0  # two seeds really differ
    values = json.loads((out / "compare.json").read_text())["values"]
    assert len(values["deep-3d"]["knn5"]) == 2
    assert (out / "encoder_maps.png").stat().st_size > 10_000
    assert (out / "deep-s2" / "seed1" / "manifest.json").is_file()


def test_rerun_reuses_finished_runs(compared):
    out, _ = compared
    before = (out / "deep-2d" / "seed0" / "model.safetensors").stat().st_mtime_ns
    r = CliRunner().invoke(main, ["compare", "--presets", "deep-2d", "--seeds", "1", "--epochs", "1", "--out", str(out),
                                  "--baselines", ""])
    assert r.exit_code == 0 and "training" not in r.output
    assert (out / "deep-2d" / "seed0" / "model.safetensors").stat().st_mtime_ns == before


def test_rerun_refuses_a_run_with_other_settings(compared):
    out, _ = compared
    before = (out / "deep-2d" / "seed0" / "model.safetensors").stat().st_mtime_ns
    r = CliRunner().invoke(main, ["compare", "--presets", "deep-2d", "--seeds", "1", "--data", "digits", "--epochs",
                                  "2", "--out", str(out), "--baselines", ""])
    assert r.exit_code == 2 and "training" not in r.output
    assert str(out / "deep-2d" / "seed0") in r.output and "epochs 1 there, 2 now" in r.output
    assert "data 'mnist-5k' there, 'digits' now" in r.output and "--out" in r.output
    assert (out / "deep-2d" / "seed0" / "model.safetensors").stat().st_mtime_ns == before


def test_compare_existing_runs(compared):
    out, _ = compared
    r = CliRunner().invoke(main, ["compare", str(out / "deep-2d" / "seed0"), str(out / "deep-2d" / "seed1"),
                                  "--out", str(out / "again"), "--baselines", ""])
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
    r = CliRunner().invoke(main, ["compare", seeds[0], seeds[0], "--out", str(tmp_path / "twice"), "--baselines", ""])
    assert r.exit_code == 2 and "same settings and seed" in r.output


def test_bad_input_trains_nothing(tmp_path):
    args = ["compare", "--seeds", "1", "--data", "digits", "--epochs", "1", "--baselines", ""]
    r = CliRunner().invoke(main, [*args, "--presets", "deep-2d,nope", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "unknown preset 'nope'" in r.output and not (tmp_path / "a").exists()
    (tmp_path / "b" / "deep-3d" / "seed0").mkdir(parents=True)
    (tmp_path / "b" / "deep-3d" / "seed0" / "notes.txt").write_text("mine")
    r = CliRunner().invoke(main, [*args, "--presets", "deep-2d,deep-3d", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "not a run folder" in r.output and not (tmp_path / "b" / "deep-2d").exists()


@pytest.mark.parametrize("presets, baselines", [("", ["--pca"]), (" , ", ["--no-pca"]), ("", ["--baselines", ""])])
def test_no_presets(tmp_path, presets, baselines):
    r = CliRunner().invoke(main, ["compare", "--presets", presets, "--seeds", "1", "--data", "digits", *baselines,
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
    rows = summary({"m": {k: [1.0, 3.0] for k in METRICS}})  # every compared metric of the table
    assert rows[0]["bce_test_mean"] == 2.0 and rows[0]["bce_test_sd"] == pytest.approx(np.sqrt(2))


def test_one_seed_has_no_spread(tmp_path):
    results = {"m": {k: [1.0] for k in METRICS}}
    rows = summary(results)
    assert rows[0]["bce_test_mean"] == 1.0 and rows[0]["bce_test_sd"] is None
    assert "±" not in format_table(rows) and "1.0000" in format_table(rows)
    write_outputs(results, tmp_path)
    assert json.loads((tmp_path / "compare.json").read_text())["summary"][0]["bce_test_sd"] is None
    assert next(csv.DictReader((tmp_path / "compare.csv").open()))["bce_test_sd"] == ""  # CSV's null


# ---- baselines: PCA, UMAP, t-SNE under the models' protocol ---------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def maps_fitted(digits):
    """UMAP and t-SNE fitted once each on the digits, seed 0 (UMAP's first fit compiles numba code: ~20 s)."""
    return {b.name: fit_baseline(b, digits, seed=0) for name in ("umap", "tsne") for b in BASELINES[name]}


@maps
def test_maps_are_scored_by_the_models_protocol(digits, maps_fitted):
    x_test, y_test = digits.flat("test")
    y_train = digits.flat("train")[1]
    idx = trust_subset(len(y_test))
    for name, fitted in maps_fitted.items():
        row = baseline_metrics(fitted, digits)
        assert set(row) == set(METRICS) & ALWAYS, name  # the keys of a (deterministic) model's row
        assert row["n_params"] is None and row["bce_test"] is None and row["mse_test"] is None  # no decoder
        assert row["train_seconds"] == fitted.seconds > 0
        assert fitted.z_train.shape == (len(y_train), 2) and fitted.z_test.shape == (len(y_test), 2)
        for k in (1, 5):  # the oracle: scikit-learn on the same embedding, test points against train points
            expected = KNeighborsClassifier(n_neighbors=k).fit(fitted.z_train, y_train).score(fitted.z_test, y_test)
            assert row[f"knn{k}"] == expected, name
        x_sub = x_test[idx].astype(np.float32) / 255
        assert row["trustworthiness"] == pytest.approx(trustworthiness(x_sub, fitted.z_test[idx], n_neighbors=5),
                                                       abs=1e-6)
        assert row["knn5"] > 0.8 and row["trustworthiness"] > 0.9, (name, row)  # chance: 0.1


def test_pca_rows_carry_their_fit_time(digits):
    fitted = fit_baseline(BASELINES["pca"][0], digits)
    row = baseline_metrics(fitted, digits)
    assert set(row) == set(METRICS) & ALWAYS and row["train_seconds"] == fitted.seconds > 0
    assert {**row, "train_seconds": None} == pca_metrics(digits, 2)  # the same row as before, plus its fit time


@maps
def test_cli_fits_baselines_for_existing_runs(digits, maps_fitted, tmp_path):
    run = train_run(RunConfig(preset="shallow-2d", data="digits", epochs=1), tmp_path / "run", plot=False).path
    out = tmp_path / "cmp"
    r = CliRunner().invoke(main, ["compare", str(run), "--baselines", "pca,umap", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "fitting umap-2 (seed 0) on 1,437 images ..." in r.output and "fitted umap-2 (seed 0) in" in r.output
    assert "fitting pca-2 on 1,437 images ..." in r.output and "tsne" not in r.output
    values = json.loads((out / "compare.json").read_text())["values"]
    assert list(values) == ["shallow-2d", "pca-2", "pca-3", "umap-2"]
    umap_row = baseline_metrics(maps_fitted["umap-2"], digits)  # the fixture's fit: same data, same seed
    for m in ("knn1", "knn5", "trustworthiness"):
        assert values["umap-2"][m] == [umap_row[m]]  # seeded: the same row again
    assert values["umap-2"]["bce_test"] == [None] and values["umap-2"]["n_params"] == [None]
    assert values["umap-2"]["train_seconds"][0] > 0 and values["pca-2"]["train_seconds"][0] > 0
    rows = {row["model"]: row for row in csv.DictReader((out / "compare.csv").open())}
    umap_csv = rows["umap-2"]
    assert umap_csv["n"] == "1" and umap_csv["bce_test_mean"] == "" and umap_csv["n_params_mean"] == ""  # CSV's null
    assert float(umap_csv["knn5_mean"]) == umap_row["knn5"]
    table_line = next(line for line in r.output.splitlines() if line.startswith("umap-2"))
    assert table_line.split()[2:5] == ["-", "-", "-"]  # parameters, BCE, MSE: none without a decoder


def test_stochastic_baselines_are_fitted_once_per_seed(compared, monkeypatch):
    """A seeded baseline (here a seeded random projection) gets one fit per seed of the runs, seeded with it."""
    def random_projection(x_train, x_test, seed):
        w = np.random.default_rng(seed).normal(size=(x_train.shape[1], 2))
        return x_train @ w, x_test @ w, None

    monkeypatch.setitem(BASELINES, "random", (Baseline("random-2", random_projection, seeded=True),))
    out, _ = compared
    said = []
    results, runs, maps = compare_runs([out / "deep-2d" / "seed0", out / "deep-2d" / "seed1"],
                                       baselines="random,pca", echo=said.append)
    assert list(results) == ["deep-2d", "random-2", "pca-2", "pca-3"]
    assert len(results["random-2"]["knn5"]) == 2 and len(results["pca-2"]["knn5"]) == 1  # PCA is exact: one fit
    assert results["random-2"]["knn5"][0] != results["random-2"]["knn5"][1]  # seeds 0 and 1 differ
    assert said[0] == "fitting random-2 (seed 0) on 4,000 images ..." and said[1].endswith(" s")
    assert "fitting random-2 (seed 1) on 4,000 images ..." in said and "fitting pca-3 on 4,000 images ..." in said
    # The 2-D baselines' maps for the figure: the first seed's fit, the test images placed as the fit placed them.
    assert [(m.name, m.seed) for m in maps] == [("random-2", 0), ("pca-2", None)]
    dataset = runs[0].dataset()
    (x_train, _), (x_test, y_test) = dataset.flat("train"), dataset.flat("test")
    assert x_test.dtype == np.uint8  # mnist-5k's pixels: the baselines see them in [0, 1]
    expected = random_projection(x_train / np.float32(255), x_test / np.float32(255), 0)[1]
    np.testing.assert_allclose(maps[0].z_test, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(maps[0].y_test, y_test)
    figure = encoder_maps_figure(runs, out / "with_maps", maps)
    assert figure.stat().st_size > encoder_maps_figure(runs, out / "without_maps").stat().st_size


def test_unknown_or_missing_baselines_are_refused_before_training(tmp_path, monkeypatch):
    args = ["compare", "--presets", "deep-2d", "--seeds", "1", "--data", "digits", "--epochs", "1"]
    r = CliRunner().invoke(main, [*args, "--baselines", "pca,nope", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and not (tmp_path / "a").exists()
    assert r.output == "error: unknown baseline 'nope': choose one or more of pca, umap, tsne\n"
    r = CliRunner().invoke(main, [*args, "--baselines", "pca,pca", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "baseline 'pca' given twice" in r.output and not (tmp_path / "a").exists()
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    r = CliRunner().invoke(main, [*args, "--baselines", "umap", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and not (tmp_path / "a").exists()
    assert 'needs umap, which is not installed: pip install "latentatlas[maps]"' in r.output
    with pytest.raises(LatentAtlasError, match=r'pip install "latentatlas\[maps\]"'):
        fit_baseline(BASELINES["umap"][0], load_dataset("digits"))


def test_baseline_names_and_the_deprecated_pca_switch(compared):
    assert resolve_baselines("pca, umap") == resolve_baselines(["pca", "umap"]) == ["pca", "umap"]
    assert resolve_baselines("") == [] and resolve_baselines("pca,umap", pca=False) == ["umap"]
    assert resolve_baselines("", pca=True) == ["pca"]
    out, _ = compared
    r = CliRunner().invoke(main, ["compare", str(out / "deep-2d" / "seed0"), "--out", str(out / "nopca"), "--no-pca"])
    assert r.exit_code == 0, r.output
    assert "--no-pca is deprecated: use --baselines" in r.output and "pca-2" not in r.output
    assert list(json.loads((out / "nopca" / "compare.json").read_text())["values"]) == ["deep-2d"]


def test_runs_trained_in_worker_processes_equal_runs_trained_here(tmp_path):
    """Each worker trains ordinary run folders; with the same threads (one) its runs are bit for bit this process's."""
    import torch

    from latentatlas.weights import load_weights

    kw = dict(seeds=2, data="digits", epochs=1, baselines="", echo=lambda line: None, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here, _, _ = compare(["shallow-2d"], out=tmp_path / "here", **kw)
    finally:
        torch.set_num_threads(threads)
    lines = []
    torch.set_num_threads(2)  # two workers of one thread each
    try:
        there, _, _ = compare(["shallow-2d"], out=tmp_path / "there", workers=2,
                              **{**kw, "echo": lines.append})
    finally:
        torch.set_num_threads(threads)
    assert lines[0] == "training 2 runs in 2 processes of 1 thread each ..."
    assert sorted(lines[1:3]) == ["  trained shallow-2d, seed 0", "  trained shallow-2d, seed 1"]
    for seed in (0, 1):
        a, b = (load_weights(tmp_path / side / "shallow-2d" / f"seed{seed}" / "model.safetensors") for side in ("here", "there"))
        assert all(torch.equal(a[k], b[k]) for k in a), seed
        assert load_run(tmp_path / "there" / "shallow-2d" / f"seed{seed}").metrics["epochs"] == 1  # manifest verified
    assert here["shallow-2d"]["bce_test"] == there["shallow-2d"]["bce_test"]


def test_workers_must_be_a_positive_integer(tmp_path):
    r = CliRunner().invoke(main, ["compare", "--presets", "shallow-2d", "--workers", "0", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and r.output.strip() == "error: workers=0 is out of range: it must be an integer >= 1"
    assert not (tmp_path / "c").exists()


def test_a_metric_no_model_has_is_no_column():
    """Plain autoencoders have no KL or log-likelihood: those columns would be "-" in every row."""
    results = {name: {k: [None] if k == METRICS[-1] else [1.0] for k in METRICS} for name in ("a", "b")}
    header = format_table(summary(results)).splitlines()[0]
    missing = next(m for m in compared_columns() if m.key == METRICS[-1])
    assert missing.header not in header and "model" in header
    results["a"][METRICS[-1]] = [2.0]  # one model has it: the column is back, "-" for the other
    assert missing.header in format_table(summary(results)).splitlines()[0]
