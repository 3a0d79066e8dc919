"""The benchmark harness on a tiny job: both loops train, figures and JSON are complete (no speed assertions)."""

import json

from click.testing import CliRunner

from latentatlas.experiments.bench import reference_fit
from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.model import AutoencoderNet

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
