"""Stacked seeds: each member trains exactly as its seed trains alone, and ignores the other members."""

import dataclasses
import json

import pytest
import torch

from latentatlas.config import RunConfig
from latentatlas.errors import LatentAtlasError
from latentatlas.losses import Batch
from latentatlas.run_folder import CKPT_STATE
from latentatlas.run_training import build_trainer, resolve_runtime, train_run, train_stacked
from latentatlas.runs import load_run
from latentatlas.stack import (
    StackedShuffle,
    member_trainer_state,
    stack_trainers,
    why_not_stack,
)

FP32 = {"precision": "fp32", "device": "cpu"}


def _members(cfgs, x):
    return [build_trainer(resolve_runtime(c), x, progress=False) for c in cfgs]


@pytest.mark.parametrize("preset,schedule", [("deep-2d", "constant"), ("deep-s2", "one-cycle")])
def test_a_stacked_member_trains_exactly_as_its_seed_alone(small, preset, schedule):
    """The oracle: each seed trained alone by the ordinary trainer, same steps, same batches."""
    x = small.flat("train")[0][:600]  # 5 steps an epoch at batch 128, the last one short
    cfgs = [RunConfig(preset=preset, epochs=2, seed=s, lr_schedule=schedule, lr=3e-3, **FP32) for s in (0, 1, 5)]
    stacked = stack_trainers(_members(cfgs, x), progress=False)
    stacked.fit(x)
    for m, cfg in enumerate(cfgs):
        alone = _members([cfg], x)[0]
        alone.fit(x)
        state = member_trainer_state(stacked, m)
        for k, v in alone.model.state_dict().items():
            torch.testing.assert_close(state["model"][k], v, rtol=2e-4, atol=2e-5, msg=f"member {m}: {k}")
        mine = state["history"]
        assert [r["train_loss"] for r in mine] == pytest.approx([r["train_loss"] for r in alone.history], rel=1e-4)
        ours = alone.optimizer.state_dict()["state"]
        for i, s in state["optimizer"]["state"].items():
            torch.testing.assert_close(s["exp_avg_sq"], ours[i]["exp_avg_sq"], rtol=1e-3, atol=1e-9)
    weights = [member_trainer_state(stacked, m)["model"]["encoder.0.weight"] for m in range(3)]
    assert not torch.allclose(weights[0], weights[1]) and not torch.allclose(weights[1], weights[2])


def test_a_members_gradient_ignores_the_other_members_data(small):
    x = small.flat("train")[0][:256]
    cfgs = [RunConfig(preset="deep-2d", epochs=1, seed=s, **FP32) for s in (0, 1)]
    stacked = stack_trainers(_members(cfgs, x), progress=False)
    xb = torch.as_tensor(x[:128]).float().div(255)

    def grads(other):
        stacked.model.zero_grad()
        loss, _ = stacked.loss_fn(stacked.model, Batch(torch.stack([xb, other]), torch.zeros(2, 128).long(), 0))
        loss.backward()
        return [p.grad[0].clone() for p in stacked.model.parameters()], [p.grad[1].clone() for p in
                                                                           stacked.model.parameters()]

    a0, a1 = grads(xb)
    b0, b1 = grads(torch.rand_like(xb))
    for g, h in zip(a0, b0):
        assert torch.equal(g, h)  # member 0's gradient: the same whatever member 1 sees
    assert any(not torch.allclose(g, h) for g, h in zip(a1, b1))  # member 1's does change


def test_stacked_members_draw_their_own_seeds_batches():
    sampler = StackedShuffle((0, 3), 4)
    batches = sampler(10, torch.Generator(), epoch=2)
    from latentatlas.train import Shuffle, seed_epoch

    for m, seed in enumerate((0, 3)):
        alone = Shuffle(4)(10, seed_epoch(seed, 2))
        assert [b[m].tolist() for b in batches[:-1]] == [a.tolist() for a in alone[:-1]]
    assert batches[-1].shape == (2, 2)  # the short last batch, for every member


def test_why_not_stack_names_the_reason(small):
    x = small.flat("train")[0][:300]
    base = RunConfig(preset="deep-2d", epochs=1, **FP32)
    assert why_not_stack(_members([base, dataclasses.replace(base, seed=1)], x), [resolve_runtime(base)] * 2) is None
    assert "more than the seed" in why_not_stack(
        _members([base, base], x), [resolve_runtime(base), resolve_runtime(dataclasses.replace(base, lr=2e-3))])
    ne = RunConfig(preset="ne-2d", epochs=1, ne_k=5, **FP32)
    assert "own batches" in why_not_stack(_members([ne, dataclasses.replace(ne, seed=1)], x),
                                          [resolve_runtime(ne)] * 2)
    free = RunConfig(preset="atlas-2d", epochs=1, layout_k=5, layout_steps=5, **FP32)
    assert "own map" in why_not_stack(_members([free, dataclasses.replace(free, seed=1)], x),
                                      [resolve_runtime(free)] * 2)
    assert "only one" in why_not_stack(_members([base], x), [resolve_runtime(base)])
    binarised = [build_trainer(resolve_runtime(c), x, progress=False, draw=torch.bernoulli)
                 for c in (base, dataclasses.replace(base, seed=1))]
    assert "binarisation" in why_not_stack(binarised, [resolve_runtime(base)] * 2)
    restarts = dataclasses.replace(base, n_init=2, epochs=2, init_epochs=1)
    assert "initialisations" in why_not_stack(_members([restarts, dataclasses.replace(restarts, seed=1)], x),
                                              [resolve_runtime(restarts)] * 2)


def test_the_stacked_trainer_keeps_every_setting_of_its_members(small):
    # Built as a copy of the first member's trainer: a setting added to Trainer later reaches the stack too.
    from latentatlas.train import Trainer

    x = small.flat("train")[0][:300]
    base = RunConfig(preset="deep-2d", epochs=3, batch_size=64, lr=2e-3, lr_schedule="cosine", **FP32)
    members = _members([base, dataclasses.replace(base, seed=1)], x)
    stacked = stack_trainers(members, progress=False)
    differ = {"model", "loss_fn", "batch_sampler", "eval_batch_size", "callbacks", "progress", "model_factory"}
    for f in dataclasses.fields(Trainer):
        if f.name not in differ:
            assert getattr(stacked, f.name) == getattr(members[0], f.name), f.name


def test_stacked_runs_are_ordinary_run_folders(small, tmp_path):
    cfgs = [RunConfig(preset="deep-2d", epochs=2, seed=s, **FP32) for s in (0, 1)]
    runs = train_stacked(cfgs, [tmp_path / "a", tmp_path / "b"], dataset=small, plot=False, progress=False)
    alone = train_run(cfgs[1], tmp_path / "alone", dataset=small, plot=False, progress=False)
    loaded = load_run(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(p.name for p in (tmp_path / "alone").iterdir())
    assert loaded.metrics["bce_test"] == pytest.approx(alone.metrics["bce_test"], rel=1e-3)
    assert loaded.config == alone.config
    assert [list(r) for r in loaded.history] == [list(r) for r in alone.history]
    assert runs[0].metrics["bce_test"] != runs[1].metrics["bce_test"]
    # A member's checkpoint is a normal run's: it resumes alone to more epochs.
    more = train_run(dataclasses.replace(cfgs[0], epochs=3), tmp_path / "a", resume=True, dataset=small, plot=False,
                     progress=False)
    assert more.resumed_from_epoch == 2 and len(more.history) == 3
    assert more.history[:2] == runs[0].history  # the stacked epochs, as the member's checkpoint kept them
    assert json.loads((tmp_path / "a" / CKPT_STATE).read_text())["history"] == more.history


def test_stacked_training_refuses_what_it_cannot_do_before_writing(small, tmp_path):
    cfgs = [RunConfig(preset="deep-2d", epochs=1, seed=0, **FP32), RunConfig(preset="deep-s2", epochs=1, seed=1, **FP32)]
    with pytest.raises(LatentAtlasError, match="cannot train stacked: the runs differ in more than the seed"):
        train_stacked(cfgs, [tmp_path / "a", tmp_path / "b"], dataset=small, plot=False, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_compare_stacks_seeds_and_falls_back_where_it_cannot(tmp_path):
    from latentatlas.experiments.compare import compare

    lines = []
    results, _, _ = compare(["deep-2d", "ne-2d"], seeds=2, data="digits", out=tmp_path / "s", epochs=1,
                         baselines="", echo=lines.append, stack=True)
    assert "training deep-2d, seeds 0, 1 stacked ..." in lines
    assert "training ne-2d separately: the objective draws its own batches (a neighbour term)" in lines
    separate, _, _ = compare(["deep-2d"], seeds=2, data="digits", out=tmp_path / "n", epochs=1, baselines="",
                          echo=lines.append, stack=False)
    assert results["deep-2d"]["bce_test"] == pytest.approx(separate["deep-2d"]["bce_test"], rel=2e-3)
    assert results["deep-2d"]["knn5"] == pytest.approx(separate["deep-2d"]["knn5"], abs=0.02)
    again, _, _ = compare(["deep-2d"], seeds=3, data="digits", out=tmp_path / "s", epochs=1, baselines="",
                       echo=lines.append, stack=True)  # two finished runs reused, one new seed: nothing to stack
    assert lines[-1] == "training deep-2d, seed 2 ..." and again["deep-2d"]["bce_test"][:2] == results["deep-2d"]["bce_test"]


def test_stacked_training_refuses_a_folder_it_may_not_write_before_writing_any(small, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    cfgs = [RunConfig(preset="deep-2d", epochs=1, seed=s, **FP32) for s in (0, 1)]
    with pytest.raises(LatentAtlasError, match="not a run folder"):
        train_stacked(cfgs, [tmp_path / "a", tmp_path / "b"], dataset=small, plot=False, progress=False)
    assert not (tmp_path / "a").exists() and [p.name for p in (tmp_path / "b").iterdir()] == ["notes.txt"]
