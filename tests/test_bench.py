"""The benchmark harness on a tiny job: both loops train, figures and JSON are complete (no speed assertions)."""

import json

from click.testing import CliRunner

from latentatlas.experiments.bench import reference_fit
from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.model import AutoencoderNet
from latentatlas.schedules import RECIPES

FIGURES = {"seconds", "samples_per_second", "bce_test", "knn5", "peak_rss_mb", "rss_increase_mb"}


def test_bench_json(tmp_path):
    out = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["bench", "--preset", "shallow-2d", "--preset", "deep-s2", "--data", "digits",
                                  "--epochs", "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "speed-up" in r.output
    d = json.loads(out.read_text())
    assert set(d["jobs"]) == {"shallow-2d", "deep-s2"} and d["job"]["preset"] == "shallow-2d"
    for side in ("reference", "latentatlas"):
        assert FIGURES <= set(d[side])
        assert 0 < d[side]["bce_test"] < 0.7 and 0 <= d[side]["knn5"] <= 1 and d[side]["peak_rss_mb"] > 50
    assert d["speedup"] == d["reference"]["seconds"] / d["latentatlas"]["seconds"]
    # the figures say what they were measured on: the CPU, what it may use here, the threads and the precision
    from latentatlas import hardware

    m = d["machine"]
    assert m["cpu"] == hardware.cpu_model() and m["threads"] >= 1 and m["precision"] == d["job"]["precision"]
    assert set(m["instructions"]) <= set(m["instructions_present"]) and m["restricted"] == hardware.restrictions()
    assert f"measured on {m['cpu']}" in r.output and d["job"]["precision"] in r.output


def test_reference_loop_learns(small):
    model = AutoencoderNet.from_config(RunConfig(preset="deep-2d").resolved(), 784)
    history = reference_fit(model, small.flat("train")[0], small.flat("test")[0], epochs=2, batch_size=128, lr=1e-3,
                            seed=0, device="cpu")
    assert history[1]["test_loss"] < history[0]["test_loss"] < 0.7


def test_progress_ticks_once_per_epoch_of_each_loop(capsys):
    from latentatlas.experiments.bench import benchmark
    from latentatlas.data import load_dataset

    benchmark("shallow-2d", load_dataset("digits"), epochs=3, progress=True)
    err = capsys.readouterr().err
    assert "shallow-2d: reference" in err  # the bar switches loops midway
    assert "6/6" in err and "7/6" not in err  # 3 epochs of latentatlas, then 3 of the reference


def test_reference_loop_reports_each_epoch(small):
    model = AutoencoderNet.from_config(RunConfig(preset="shallow-2d").resolved(), 784)
    seen = []
    history = reference_fit(model, small.flat("train")[0], small.flat("test")[0], epochs=2, batch_size=256, lr=1e-3,
                            seed=0, device="cpu", on_epoch=seen.append)
    assert seen == history and [r["epoch"] for r in seen] == [1, 2]


def test_to_quality_targets_the_loops_own_final_values(tmp_path):
    out = tmp_path / "q.json"
    r = CliRunner().invoke(main, ["bench", "--to-quality", "--preset", "shallow-2d", "--data", "digits", "--epochs",
                                  "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    q = json.loads(out.read_text())["jobs"]["shallow-2d"]
    ref, ours = q["reference"], q["latentatlas"]
    assert [e["epoch"] for e in ref["epochs"]] == [1, 2]
    assert q["target"]["bce_test"] == ref["epochs"][-1]["bce_test"] + 0.002
    assert q["target"]["knn5"] == ref["epochs"][-1]["knn5"] - 0.01
    assert ref["seconds_to_target"] is not None  # the loop meets its own final values by its last epoch at least
    assert ref["total_seconds"] == sum(e["seconds"] for e in ref["epochs"])
    assert q["job"]["recipe_settings"] == RECIPES["fast"].settings()
    if ours["seconds_to_target"] is not None:  # stopped at the first epoch on target
        assert ours["epochs"][-1]["epoch"] == ours["epochs_to_target"]
        assert q["time_share"] == ours["seconds_to_target"] / ref["total_seconds"]
    else:
        assert len(ours["epochs"]) == RECIPES["fast"].epochs and q["time_share"] is None
    assert "tutorial loop, 2 epochs" in r.output and "latentatlas --recipe fast" in r.output
