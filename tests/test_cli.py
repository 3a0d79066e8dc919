"""The CLI end to end on mnist-5k, and its one-line errors."""

import dataclasses
import json
import re
import types

import click
from click.testing import CliRunner

from latentatlas.cli import main, train
from latentatlas.errors import LatentAtlasError
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
    assert r.output.startswith(f"evaluating {out} on 1,000 test images of mnist-5k") and f"wrote {out / 'metrics.json'}" in r.output
    r = invoke("plot", out, "--glyphs")
    assert r.exit_code == 0 and "encoder_map_equirectangular.png" in r.output
    assert r.output.startswith(f"drawing the figures of {out}")
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1


def test_train_flags_are_the_config_names():
    flags = {p.name for p in train.params} - {"out", "overwrite", "resume", "tensorboard", "recipe"}
    assert flags == {f.name for f in dataclasses.fields(RunConfig)} - {"extra"}


def test_presets_lists_parameter_counts():
    r = invoke("presets")
    assert r.exit_code == 0
    assert "666,791" in r.output and "3,768,682" in r.output and "3,923" in r.output


def test_datasets_lists_offline_sources():
    r = invoke("datasets")
    assert r.exit_code == 0 and "mnist-5k" in r.output and "offline" in r.output


def test_debug_shows_the_traceback(tmp_path):
    r = CliRunner().invoke(main, ["--debug", "train", "--preset", "nope", "--out", str(tmp_path / "r")])
    # The error itself propagates (the traceback); without --debug it is a one-line message and SystemExit(2).
    assert isinstance(r.exception, LatentAtlasError) and "unknown preset 'nope'" in str(r.exception)
    r = CliRunner().invoke(main, ["train", "--preset", "nope", "--out", str(tmp_path / "r")])
    assert isinstance(r.exception, SystemExit) and r.exit_code == 2 and "error: unknown preset 'nope'" in r.output


def test_demo_prints_the_comparison_table(demo):
    root, output = demo
    for name in ("deep-2d", "deep-3d", "deep-s2", "atlas-2d", "atlas-s2", "test BCE", "5-NN", "692,264"):
        assert name in output
    assert (root / "deep-s2" / "figures" / "decoder_grid_equirectangular.png").is_file()
    assert (root / "report.html").stat().st_size > 1_000_000  # plotly.js and every figure inlined
    assert "latentatlas explore" in output
    # Its output went to a file: each run still said how its epochs went, in lines, not a bar smeared by \r.
    epochs = [line for line in output.splitlines() if re.match(r"training: .*epoch 1, train_loss \d\.\d{4}.*left$", line)]
    assert len(epochs) == 5 and "\r" not in output


def test_every_run_gets_enough_steps_unless_told_the_epochs(monkeypatch, tmp_path):
    import latentatlas.experiments.compare as compare_module
    import latentatlas.run_training as run_training
    from latentatlas.config import RunConfig
    from latentatlas.run_training import MIN_STEPS, enough_steps

    def epochs(cfg, n_train, given=False):
        data = types.SimpleNamespace(y_train=range(n_train))  # only its size counts
        return enough_steps(cfg, given, data)[0].epochs

    atlas, plain = RunConfig(preset="atlas-2d").resolved(), RunConfig(preset="deep-2d").resolved()
    for cfg in (plain, atlas):  # one rule for every preset
        assert epochs(cfg, 4000) == 63  # 32 batches of 128 an epoch: 63 x 32 = 2,016 >= 2,000 steps
        assert (epochs(cfg, 4000) - 1) * 32 < MIN_STEPS
        assert epochs(cfg, 60_000) == 10  # 469 batches an epoch: the tutorial's 10 already give 4,690 steps
        assert epochs(cfg, 4000, given=True) == 10  # epochs given win
    assert epochs(plain, 1200) == 200  # 10 batches an epoch
    note = enough_steps(plain, False, types.SimpleNamespace(y_train=range(1200)))[2]
    assert note.startswith("epochs: 200, the fewest that make 2,000 steps of 128 on 1,200 training samples")

    class Asked(Exception):  # stops each command at its first training, with the settings it would train
        pass

    def asked(cfg, *args, **kwargs):
        raise Asked(cfg)

    monkeypatch.setattr(run_training, "train_run", asked)
    monkeypatch.setattr(compare_module, "train_run", asked)
    cases = [(["train", "--preset", "atlas-2d"], 63),  # mnist-5k: 4,000 training images, 32 batches an epoch
             (["train", "--preset", "atlas-2d", "--epochs", "4"], 4),
             (["train", "--preset", "deep-2d"], 63),
             (["compare", "--presets", "atlas-2d", "--seeds", "1", "--baselines", ""], 63),
             (["compare", "--presets", "atlas-2d", "--seeds", "1", "--epochs", "4"], 4)]
    for command, epochs in cases:
        r = CliRunner().invoke(main, [*command, "--out", str(tmp_path / "out")])
        assert isinstance(r.exception, Asked), r.output
        assert r.exception.args[0].epochs == epochs, command
        assert ("epochs: 63, the fewest that make 2,000 steps" in r.output) == (epochs == 63), r.output
    assert not (tmp_path / "out").exists()


def test_explore_help_states_the_real_point_limit():
    from latentatlas.viz.explorer import MAX_POINTS

    r = CliRunner().invoke(main, ["explore", "--help"])
    assert f"[default: {MAX_POINTS:,}]" in " ".join(r.output.split())


def test_every_option_has_help_and_the_command_list_is_not_cut_off():
    for name, command in main.commands.items():
        missing = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
        assert missing == [], f"{name}: options without help: {missing}"
    r = CliRunner().invoke(main, ["--help"], terminal_width=80)
    listed = r.output.split("Commands:")[1].strip().splitlines()
    assert len(listed) == len(main.commands) and not any(line.rstrip().endswith("...") for line in listed)


def test_the_training_line_names_the_settings_given_in_place_of_the_presets():
    assert RunConfig(preset="deep-s2").resolved().description == "deep-s2"
    assert RunConfig(preset="deep-s2", geometry="euclidean").resolved().description == "deep-s2, geometry='euclidean'"
    assert RunConfig(preset=None, hidden_sizes=(8,), geometry="sphere", latent_dim=3).description == "custom"
