"""Corruptions and the transforms made of them: against hand-computed small examples, seeded, rebuilt identically
from a run folder, and bad levels refused in one line."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.data import DataSpec, load_dataset, parse_transform
from latentatlas.data.corruptions import corrupt_images, training_corruption
from latentatlas.errors import LatentAtlasError
from latentatlas.run_training import train_run
from latentatlas.runs import evaluate_run, load_run


def rotate(x, degrees):
    x = np.asarray(x, np.float32)
    return corrupt_images(x[None], "rotate", degrees, x.shape).numpy()[0]


def test_rotation_by_90_is_the_transposed_flip():
    x = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32) / 9
    by_hand = np.array([[3, 6, 9], [2, 5, 8], [1, 4, 7]], np.float32) / 9  # counter-clockwise, row 0 on top
    np.testing.assert_array_equal(x.T[::-1], by_hand)
    np.testing.assert_allclose(rotate(x, 90), by_hand, atol=1e-6)
    np.testing.assert_allclose(rotate(x, -90), x[::-1].T, atol=1e-6)  # clockwise: the flipped transpose
    wide = np.arange(12, dtype=np.float32).reshape(3, 4) / 11
    np.testing.assert_allclose(rotate(wide, 180), wide[::-1, ::-1], atol=1e-6)  # not square: still rigid
    for identity in (0, 360):
        np.testing.assert_allclose(rotate(wide, identity), wide, atol=1e-6)


def test_rotation_turns_about_the_centre_and_fills_with_zeros():
    x = np.zeros((5, 5), np.float32)
    x[2, 2] = 1.0  # the centre pixel stays where it is, whatever the angle
    for degrees in (17, 45, 133):
        r = rotate(x, degrees)
        assert r[2, 2] == pytest.approx(1.0, abs=1e-6) and r[[0, 4]].max() == 0 and r[:, [0, 4]].max() == 0
    corner = rotate(np.ones((6, 6), np.float32), 45)
    assert corner[0, 0] == 0 and corner[2:4, 2:4].min() == pytest.approx(1.0)  # corners leave the frame


def test_an_occluded_patch_is_exactly_zero_and_nothing_else_changes():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (200, 6, 7)).astype(np.float32)  # no pixel is 0 before
    out = corrupt_images(x, "occlude", 3, (6, 7), seed=1).numpy()
    places = set()
    for img, orig in zip(out, x):
        rows, cols = np.nonzero(img == 0)
        assert len(rows) == 9 and rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2  # one 3 x 3 square
        np.testing.assert_array_equal(img[img != 0], orig[img != 0])
        places.add((rows.min(), cols.min()))
    assert places == {(r, c) for r in range(4) for c in range(5)}  # every place it fits, drawn
    np.testing.assert_array_equal(corrupt_images(x, "occlude", 0, (6, 7)).numpy(), x)
    whole = corrupt_images(x[:3], "occlude", 6, (6, 7)).numpy()
    assert ((whole == 0).sum(axis=(1, 2)) == 36).all()


def test_noise_has_the_asked_sigma():
    x = np.full((500, 28, 28), 0.5, np.float32)  # mid-grey: clipping at 0 and 1 is 5 sigma away
    for sigma in (0.05, 0.1):
        out = corrupt_images(x, "noise", sigma, (28, 28), seed=3).numpy()
        assert (out - x).std() == pytest.approx(sigma, rel=0.01)
        assert (out - x).mean() == pytest.approx(0.0, abs=1e-3)
    np.testing.assert_array_equal(corrupt_images(x, "noise", 0.0, (28, 28)).numpy(), x)
    clipped = corrupt_images(x, "noise", 5.0, (28, 28)).numpy()
    assert clipped.min() == 0 and clipped.max() == 1


def test_salt_and_pepper_sets_the_asked_share_to_0_or_1():
    x = np.full((100, 28, 28), 0.5, np.float32)
    out = corrupt_images(x, "saltpepper", 0.2, (28, 28)).numpy()
    assert (out == 0).mean() == pytest.approx(0.1, abs=0.005) and (out == 1).mean() == pytest.approx(0.1, abs=0.005)
    assert set(np.unique(out)) == {0.0, 0.5, 1.0}


def test_corruptions_are_seeded():
    x = load_dataset("digits").x_test[:50]
    for name, level in (("noise", 0.3), ("occlude", 3), ("saltpepper", 0.1)):
        a, b = (corrupt_images(x, name, level, (8, 8), seed=5).numpy() for _ in range(2))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, corrupt_images(x, name, level, (8, 8), seed=6).numpy())


def test_a_run_rebuilds_its_corrupted_data_identically(tmp_path):
    transforms = ("noise:sigma=0.2:split=both", "occlude:size=3:seed=7", "rotate:degrees=30")
    run = train_run(RunConfig(preset="shallow-2d", data="digits", epochs=1, transforms=transforms), tmp_path / "r",
                    plot=False, progress=False)
    made, again = DataSpec("digits", transforms=transforms).load(), load_run(tmp_path / "r").dataset()
    clean = load_dataset("digits")
    for split in ("train", "test"):
        np.testing.assert_array_equal(getattr(made, f"x_{split}"), getattr(again, f"x_{split}"))
        assert not np.allclose(getattr(again, f"x_{split}"), getattr(clean, f"x_{split}") / 255.0)
    assert made.x_train.dtype == np.float32 and 0 <= made.x_test.min() and made.x_test.max() <= 1
    # Noise only on the training set: occlusion and rotation were asked for the test set alone.
    np.testing.assert_array_equal(made.x_train, DataSpec("digits", transforms=transforms[:1]).load().x_train)
    recomputed = evaluate_run(tmp_path / "r")  # from the rebuilt data: the very numbers written at training
    for key in ("bce_test", "mse_test", "knn5"):
        assert recomputed[key] == run.metrics[key], key


def test_a_transform_has_one_canonical_spelling():
    assert str(parse_transform("noise:sigma=0.3")) == "noise:sigma=0.3:split=test:seed=0"
    assert str(parse_transform("occlude:seed=2:size=4")) == "occlude:size=4:split=test:seed=2"
    spelled = str(parse_transform("rotate:degrees=90:split=both"))
    assert str(parse_transform(spelled)) == spelled


@pytest.mark.parametrize("transform, message", [
    ("noise:sigma=-0.1", "noise: sigma=-0.1 is out of range: it must be >= 0"),
    ("noise:sigma=nan", "must be a finite number"),
    ("occlude:size=9", "a patch of side 9 does not fit in images of 8 x 8: give a size in 0..8"),
    ("occlude:size=2.5", "size='2.5' must be int"),
    ("saltpepper:p=1.5", "p=1.5 is out of range: it must lie in [0, 1]"),
    ("rotate:degrees=inf", "must be a finite number"),
    ("noise:sigma=0.1:split=valid", "split='valid': choose one of test, train, both"),
    ("holdout:classes=12", "no class 12 in digits"),
])
def test_bad_levels_are_refused_in_one_line(tmp_path, transform, message):
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--data", "digits", "--epochs", "1",
                                  "--transforms", transform, "--out", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and message in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_denoising_corrupts_the_inputs_and_keeps_the_targets_clean(small):
    from latentatlas.losses import Batch, bce, build_objective
    from latentatlas.model import AutoencoderNet

    cfg = RunConfig(preset="shallow-2d", train_noise=0.3, train_occlude=5).resolved()
    model = AutoencoderNet.from_config(cfg, 784)
    x = torch.as_tensor(small.x_train[:64].reshape(64, -1)).float() / 255
    fed = []

    def spy(inputs):
        fed.append(inputs)
        return model(inputs)

    loss_fn = build_objective(cfg, model.geometry, small.flat("train")[0]).loss_fn()
    torch.manual_seed(0)
    loss, _ = loss_fn(spy, Batch(x, torch.arange(64), 0))
    assert not torch.equal(fed[0], x)
    assert ((fed[0].reshape(64, 28, 28) == 0).sum(dim=(1, 2)) >= 25).all()  # each one's 5 x 5 square, at least
    assert (fed[0] - x).abs().max() > 0.3  # and noise
    with torch.no_grad():
        assert loss.item() == pytest.approx(bce(model(fed[0]).logits, x).item(), rel=1e-6)  # the clean target
    loss_fn(spy, Batch(x, None, 0))  # a test batch: no index, so the clean input
    assert torch.equal(fed[1], x)
    with pytest.raises(LatentAtlasError, match="does not fit in images of 28 x 28"):
        training_corruption(0.0, 29, 784)
    assert training_corruption(0.0, 0, 784) is None


def test_denoising_training_is_seeded(tmp_path):
    def weights(name, **kw):
        run = train_run(RunConfig(preset="shallow-2d", data="digits", epochs=2, **kw), tmp_path / name, plot=False,
                        progress=False)
        return run.model.state_dict()["encoder.0.weight"]

    a, b = weights("a", train_noise=0.2, train_occlude=2), weights("b", train_noise=0.2, train_occlude=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, weights("plain"))
