"""Learning-rate schedules and training recipes: shapes against torch's own schedulers, the registries, the CLI."""

import json

import pytest
import torch
from click.testing import CliRunner

from latentatlas.cli import main
from latentatlas.config import SETTINGS, RunConfig
from latentatlas.errors import LatentAtlasError
from latentatlas.schedules import RECIPES, SCHEDULES, get_recipe, get_schedule
from latentatlas.train import Adam


def _lrs(factory, total):
    p = [torch.nn.Parameter(torch.zeros(2))]
    opt, sched = factory(p, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


@pytest.mark.parametrize("total", [7, 40, 469 * 5])
def test_one_cycle_is_torchs_one_cycle(total):
    """The oracle: torch.optim.lr_scheduler.OneCycleLR with its defaults, momentum left alone."""

    def torch_one_cycle(params, total_steps):
        opt = torch.optim.Adam(params, lr=3e-3)
        return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=total_steps,
                                                        cycle_momentum=False)

    assert _lrs(Adam(3e-3, "one-cycle"), total) == pytest.approx(_lrs(torch_one_cycle, total), rel=1e-9, abs=1e-15)


def test_cosine_warms_up_then_falls_to_zero():
    lrs = _lrs(Adam(1e-3, "cosine"), 200)  # warm-up: the first 5%, 10 steps
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3) and max(lrs) == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 1e-6


def test_constant_has_no_scheduler_so_old_runs_stay_identical():
    opt, sched = Adam(1e-3)([torch.nn.Parameter(torch.zeros(2))], 10)
    assert sched is None and opt.param_groups[0]["lr"] == 1e-3


def test_every_schedule_starts_and_ends_below_its_peak():
    for name, f in SCHEDULES.items():
        values = [f(s, 100) for s in range(100)]
        assert max(values) == pytest.approx(1.0, abs=0.01), name
        assert all(0 <= v <= 1 for v in values), name


def test_the_tutorial_recipe_is_the_settings_defaults():
    defaults = {f.name: f.default for f in SETTINGS}
    assert {k: defaults[k] for k in RECIPES["tutorial"].settings()} == RECIPES["tutorial"].settings()
    for recipe in RECIPES.values():  # every recipe is a valid configuration, for every preset it names too
        RunConfig(preset="deep-2d", **recipe.settings()).resolved()
        for preset in recipe.presets:
            RunConfig(preset=preset, **recipe.settings(preset)).resolved()


def test_a_recipe_may_differ_for_a_preset_and_the_cli_and_compare_follow_it(tmp_path):
    from latentatlas.experiments.compare import compare

    fast = RECIPES["fast"]
    assert fast.settings("thick-s2") == {**fast.settings(), "epochs": 3, "batch_size": 256}
    assert fast.settings("deep-2d") == fast.settings()
    out = tmp_path / "r"
    r = CliRunner().invoke(main, ["train", "--preset", "thick-s2", "--data", "digits", "--recipe", "fast",
                                  "--batch-size", "512", "--out", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["epochs"], cfg["batch_size"], cfg["lr"]) == (3, 512, fast.lr)  # what was given wins
    results, runs, _ = compare(["thick-s2", "shallow-2d"], seeds=1, data="digits", out=tmp_path / "c", baselines="",
                            recipe="fast", echo=lambda line: None, progress=False)
    assert {r.config.preset: (r.config.epochs, r.config.batch_size) for r in runs} == {
        "thick-s2": (3, 256), "shallow-2d": (6, 128)}


@pytest.mark.parametrize("call,message", [
    (lambda: get_recipe("slow"), "unknown recipe 'slow': choose one of tutorial, fast"),
    (lambda: get_schedule("warp"), "unknown lr_schedule 'warp': choose one of constant, one-cycle, cosine"),
    (lambda: RunConfig(lr_schedule="warp").resolved(), "unknown lr_schedule 'warp'"),
    (lambda: RunConfig(lr_schedule=3).resolved(), "unknown lr_schedule 3"),
])
def test_bad_names_are_refused_in_one_line(call, message):
    with pytest.raises(LatentAtlasError, match=message):
        call()


def test_cli_recipe_fills_what_is_not_given(tmp_path):
    out = tmp_path / "r"
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--data", "digits", "--recipe", "fast",
                                  "--epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["epochs"], cfg["lr"], cfg["lr_schedule"], cfg["batch_size"]) == (1, RECIPES["fast"].lr, "one-cycle", 128)
    ckpt = json.loads((out / "checkpoint.json").read_text())
    assert ckpt["scheduler"]["last_epoch"] == len(json.loads((out / "history.json").read_text())) * 12  # 1,437 / 128


@pytest.mark.parametrize("args,message", [
    (["train", "--recipe", "slow"], "error: unknown recipe 'slow': choose one of tutorial, fast"),
    (["train", "--lr-schedule", "warp"], "error: unknown lr_schedule 'warp'"),
    (["compare", "--recipe", "slow"], "error: unknown recipe 'slow'"),
    (["bench", "--to-quality", "--recipe", "slow"], "error: unknown recipe 'slow'"),
])
def test_cli_bad_recipe_or_schedule_is_one_line(tmp_path, args, message):
    r = CliRunner().invoke(main, [*args, "--out" if args[0] != "bench" else "--json",
                                  str(tmp_path / ("x" if args[0] != "bench" else "x.json"))])
    assert r.exit_code == 2 and r.output.startswith(message) and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "x").exists()
