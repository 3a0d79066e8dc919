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


def copy_run(tmp, finished_run, damage):
    run = tmp / "copy"
    shutil.copytree(finished_run, run)
    damage(run)
    return ["evaluate", str(run)]


def pickle_weights(run):
    torch.save({"w": torch.zeros(1)}, run / "model.safetensors")


def truncate_weights(run):
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[:100])


CASES = {
    "0..255 floats with BCE": (lambda t, r: npz(t, x_train=np.full((8, 4, 4), 255.0)), "floats must lie in [0, 1]"),
    "NaN in the data": (lambda t, r: npz(t, x_test=np.full((4, 4, 4), np.nan)), "NaN or infinite"),
    "empty data set": (lambda t, r: npz(t, x_train=np.zeros((0, 4, 4), np.uint8), y_train=np.arange(0)), "empty"),
    "labels of the wrong length": (lambda t, r: npz(t, y_train=np.arange(5)), "8 train images but labels"),
    "unknown preset": (lambda t, r: ["train", "--preset", "deep-9d"], "unknown preset 'deep-9d': choose one of shallow-2d"),
    "unknown geometry": (lambda t, r: ["train", "--geometry", "torus"], "choose one of euclidean, sphere"),
    "unknown data set": (lambda t, r: ["train", "--data", "imagenet"], "unknown data set 'imagenet': choose one of mnist-5k"),
    "sphere of dimension 1": (lambda t, r: ["train", "--geometry", "sphere", "--latent-dim", "1"], "it needs an integer >= 2"),
    "negative learning rate": (lambda t, r: ["train", "--lr", "-1"], "lr=-1.0 is out of range"),
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
    "report of a non-run": (lambda t, r: ["report", str(r), str(t), "--out", str(t / "o.html")], "not a run folder"),
    "explorer of an unfinished run": (lambda t, r: copy_run(t, r, lambda run: (run / "manifest.json").unlink())[1:2]
                                      and ["explore", str(t / "copy"), "--out", str(t / "o.html")], "did not finish"),
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
