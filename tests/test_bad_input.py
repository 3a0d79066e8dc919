"""The bad-input suite: each case gets one clear line, exit code 2, no traceback, and nothing written.

Add a case: one row in CASES, a name, a function that makes the input in a temp folder and returns the CLI
arguments, and a fragment of the expected message.
"""

import io
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from idx_files import idx_bytes, write_mnist_folder
from latentatlas.cli import main


def npz(tmp, **overrides):
    arrays = dict(x_train=np.zeros((8, 4, 4), np.uint8), y_train=np.arange(8) % 2, x_test=np.zeros((4, 4, 4), np.uint8),
                  y_test=np.arange(4) % 2)
    arrays.update(overrides)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (tmp / "d.npz").write_bytes(buf.getvalue())
    return ["train", "--data", str(tmp / "d.npz")]


def raw_file(tmp, name, content):
    (tmp / name).write_bytes(content)
    return ["train", "--data", str(tmp / name)]


def image_folder(tmp, sizes):
    from PIL import Image

    for i, size in enumerate(sizes):
        (tmp / "imgs" / "cat").mkdir(parents=True, exist_ok=True)
        Image.new("L", (size, size), color=i * 40).save(tmp / "imgs" / "cat" / f"{i}.png")
    return ["train", "--data", str(tmp / "imgs")]


def idx_folder(tmp, damage):
    write_mnist_folder(tmp / "idx", gz=False)
    f = tmp / "idx" / "train-images-idx3-ubyte"
    f.write_bytes(damage(f.read_bytes()))
    return ["train", "--data", str(tmp / "idx")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--data", "digits", "--epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def copy_run(tmp, finished_run, damage, command=("evaluate",)):
    run = tmp / "copy"
    shutil.copytree(finished_run, run)
    damage(run)
    return [*command, str(run)]


def pickle_weights(run):
    torch.save({"w": torch.zeros(1)}, run / "model.safetensors")


def truncate_weights(run):
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[:100])


def flip_a_weight_bit(run):
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-5] ^= 0x10  # inside the last tensor: the file still parses, but it is not the trained model
    (run / "model.safetensors").write_bytes(bytes(data))


def plain_file(tmp, name):
    (tmp / name).write_text("not a folder")
    return tmp / name


def estimator_folder(tmp):
    from latentatlas import Autoencoder

    x = np.random.default_rng(0).random((40, 16))
    Autoencoder(preset=None, hidden_sizes=(8,), geometry="euclidean", latent_dim=2, epochs=1, device="cpu",
                scaling="minmax").fit(x).save(tmp / "est")
    return tmp / "est"


CASES = {
    "0..255 floats as pixels": (lambda t, r: [*npz(t, x_train=np.full((8, 4, 4), 255.0)), "--scaling", "pixels"],
                                "floats must lie in [0, 1]"),
    "NaN in the data": (lambda t, r: npz(t, x_test=np.full((4, 4, 4), np.nan)), "NaN or infinite"),
    "empty data set": (lambda t, r: npz(t, x_train=np.zeros((0, 4, 4), np.uint8), y_train=np.arange(0)), "empty"),
    "labels of the wrong length": (lambda t, r: npz(t, y_train=np.arange(5)), "8 train images but labels"),
    "unknown preset": (lambda t, r: ["train", "--preset", "resnet"], "unknown preset 'resnet': choose one of shallow-2d"),
    "unknown geometry": (lambda t, r: ["train", "--geometry", "hyperbolic"], "choose one of euclidean, sphere"),
    "unknown data set": (lambda t, r: ["train", "--data", "imagenet"], "unknown data set 'imagenet': choose one of mnist-5k"),
    "sphere of dimension 1": (lambda t, r: ["train", "--geometry", "sphere", "--latent-dim", "1"], "it needs an integer >= 2"),
    "negative learning rate": (lambda t, r: ["train", "--lr", "-1"], "lr=-1.0 is out of range"),
    "no epochs left after the initialisations": (lambda t, r: ["train", "--n-init", "3", "--init-epochs", "10"],
                                                 "init_epochs=10 leaves no epochs after choosing among n_init=3"),
    "zero epochs": (lambda t, r: ["train", "--epochs", "0"], "epochs=0 is out of range"),
    "zero batch size": (lambda t, r: ["train", "--batch-size", "0"], "batch_size=0 is out of range"),
    "unknown device": (lambda t, r: ["train", "--device", "tpu"], "unknown device 'tpu'"),
    "truncated IDX": (lambda t, r: idx_folder(t, lambda b: b[:-10]), "train-images-idx3-ubyte: truncated"),
    "non-IDX file": (lambda t, r: idx_folder(t, lambda b: b"hello" + b[5:]), "not an IDX file"),
    "labels as images": (lambda t, r: idx_folder(t, lambda b: idx_bytes(np.zeros(20, np.uint8))), "must be 3-D"),
    "corrupt npz": (lambda t, r: raw_file(t, "d.npz", b"PK\x03\x04" + b"\x00" * 40), "not a valid .npz"),
    "images of different sizes": (lambda t, r: image_folder(t, [8, 8, 9]), "images of different sizes in a folder"),
    "not an image": (lambda t, r: raw_file(t, "x.png", b"hello") and ["train", "--data", str(t)], "x.png: not a readable image"),
    "empty image folder": (lambda t, r: (t / "e" / "cls").mkdir(parents=True) or ["train", "--data", str(t / "e")], "no data found"),
    "pickle as weights": (lambda t, r: copy_run(t, r, pickle_weights), "refused: it looks like a pickle"),
    "truncated safetensors": (lambda t, r: copy_run(t, r, truncate_weights), "not a valid safetensors file"),
    "unfinished run": (lambda t, r: copy_run(t, r, lambda run: (run / "manifest.json").unlink()), "did not finish"),
    "not a run folder": (lambda t, r: ["evaluate", str(t)], "not a run folder"),
    "evaluate a model fitted on arrays": (lambda t, r: ["evaluate", str(estimator_folder(t))],
                                          "fitted on in-memory arrays (Autoencoder.save)"),
    "a flipped bit in the weights": (lambda t, r: copy_run(t, r, flip_a_weight_bit),
                                     "model.safetensors: changed since the run was written"),
    "a manifest that is not one": (lambda t, r: copy_run(t, r, lambda run: (run / "manifest.json").write_text("[1, 2]")),
                                   "not a latentatlas manifest"),
    "a truncated manifest": (lambda t, r: copy_run(t, r, lambda run: (run / "manifest.json").write_text('{"files": {')),
                             "manifest.json: unreadable JSON"),
    "truncated latents in a report": (lambda t, r: copy_run(t, r, lambda run: (run / "latents.npz").write_bytes(b"PK"),
                                                            ("report", "--out", str(t / "o.html"))),
                                      "latents.npz: changed since the run was written"),
    "a report under a file": (lambda t, r: ["report", str(r), "--out", str(plain_file(t, "f") / "o.html")],
                              "is a file, not a folder"),
    "a bad preset after a good one in bench": (lambda t, r: ["bench", "--preset", "shallow-2d", "--preset", "nope",
                                                             "--data", "digits", "--epochs", "1"],
                                               "unknown preset 'nope'"),
    "a demo folder under a file": (lambda t, r: ["demo", "--data", "digits", "--epochs", "1", "--out",
                                                 str(plain_file(t, "f") / "demo")], "is a file, not a folder"),
    "an export folder that is a file": (lambda t, r: ["export", str(r), "--onnx", "--out", str(plain_file(t, "f"))],
                                        "f is a file, not a folder"),  # refused by the output guard, before the export
    "a demo of zero epochs": (lambda t, r: ["demo", "--data", "digits", "--epochs", "0", "--out", str(t / "demo")],
                              "epochs=0 is out of range"),
    "a tensorboard folder under a file": (lambda t, r: ["train", "--preset", "shallow-2d", "--data", "digits",
                                                        "--epochs", "1", "--tensorboard", str(plain_file(t, "f") / "tb")],
                                          "is a file, not a folder"),
    "tensorboard onto a file": (lambda t, r: ["train", "--preset", "shallow-2d", "--data", "digits", "--epochs", "1",
                                              "--tensorboard", str(plain_file(t, "tb"))], "tb is a file: give a folder"),
    "report of a non-run": (lambda t, r: ["report", str(r), str(t), "--out", str(t / "o.html")], "not a run folder"),
    "explorer of an unfinished run": (lambda t, r: copy_run(t, r, lambda run: (run / "manifest.json").unlink(),
                                                            ("explore", "--out", str(t / "o.html"))), "did not finish"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input(tmp_path, finished_run, case):
    make, message = CASES[case]
    args = make(tmp_path, finished_run)
    out = tmp_path / "out"
    if args[0] == "train":
        args = [*args, "--out", str(out)]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
    assert "Traceback" not in r.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_existing_run_folder_is_refused_unless_overwrite(tmp_path, finished_run):
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    before = (run / "model.safetensors").read_bytes()
    r = CliRunner().invoke(main, ["train", "--data", "digits", "--epochs", "1", "--out", str(run)])
    assert r.exit_code == 2 and "already exists" in r.output and "--overwrite" in r.output
    assert (run / "model.safetensors").read_bytes() == before
    r = CliRunner().invoke(main, ["train", "--data", "digits", "--epochs", "1", "--out", str(run), "--overwrite"])
    assert r.exit_code == 0, r.output


def test_refused_weights_leave_the_run_as_it_was(tmp_path, finished_run):
    copy_run(tmp_path, finished_run, flip_a_weight_bit)
    run = tmp_path / "copy"
    manifest = (run / "manifest.json").read_bytes()
    r = CliRunner().invoke(main, ["evaluate", str(run)])
    assert r.exit_code == 2 and "changed since" in r.output
    assert (run / "manifest.json").read_bytes() == manifest  # not re-signed over the damaged weights


def test_overwrite_never_deletes_a_file(tmp_path):
    victim = plain_file(tmp_path, "data.npz")
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--data", "digits", "--epochs", "1",
                                  "--out", str(victim), "--overwrite"])
    assert r.exit_code == 2 and "is a file, not a run folder" in r.output
    assert victim.read_text() == "not a folder"


def test_an_unfinished_run_points_to_resume(tmp_path, finished_run):
    copy_run(tmp_path, finished_run, lambda run: (run / "manifest.json").unlink())
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--data", "digits", "--epochs", "1",
                                  "--out", str(tmp_path / "copy")])
    assert r.exit_code == 2 and "--resume continues it" in r.output


def test_a_run_finds_its_data_file_from_any_folder(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    npz(tmp_path / "a")
    r = CliRunner().invoke(main, ["train", "--preset", "shallow-2d", "--data", "d.npz", "--epochs", "1", "--out", "run"])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["evaluate", "a/run"])
    assert r.exit_code == 0, r.output


def test_run_files_get_the_umask_permissions(tmp_path, finished_run):
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("model.safetensors", "checkpoint.safetensors", "metrics.json"):
        assert (finished_run / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_resume_with_fewer_epochs_is_refused(tmp_path):
    args = ["train", "--preset", "shallow-2d", "--data", "digits", "--out", str(tmp_path / "r")]
    assert CliRunner().invoke(main, [*args, "--epochs", "2"]).exit_code == 0
    manifest = (tmp_path / "r" / "manifest.json").read_bytes()
    r = CliRunner().invoke(main, [*args, "--epochs", "1", "--resume"])
    assert r.exit_code == 2 and "--epochs 1 is fewer than the 2 epochs already trained" in r.output
    assert (tmp_path / "r" / "manifest.json").read_bytes() == manifest  # still a finished run


@pytest.mark.parametrize("args, hint", [
    (["train", "--preset", "deep-s3"], "did you mean 'deep-s2'"),
    (["train", "--geometry", "shpere"], "did you mean 'sphere'"),
    (["train", "--data", "mnist5k"], "did you mean 'mnist-5k'"),
    (["train", "--transforms", "holdot:classes=3"], "did you mean 'holdout'"),
    (["train", "--loss", "bec"], "did you mean 'bce'"),
])
def test_a_typo_gets_a_did_you_mean_and_the_full_list(args, hint):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert hint in r.output and "choose one of" in r.output
    assert len(r.output.strip().splitlines()) == 1
