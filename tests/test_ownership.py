"""Nothing a user owns is ever lost: overwrite, concurrency, untrusted files and hostile sizes (issue 16).

The table holds cases grouped by the nine guarantees (the number that starts each case's name). Each case builds
its input in a workspace that holds a finished run (``run/``), a folder of the user's (``outside/``) and whatever
the case adds, then asserts: exit code 2 (or the documented Python exception), one line, no traceback, and every
file of the workspace as it was, by hash (the run intact, nothing outside it touched, no partial output left).
The one file allowed to change is the run's lock file, which names whoever last tried to write the run.

Concurrency (two writer processes), fault injection (a file-size limit during train, report and save) and the
``--serve`` server's behaviour (idle, trickled and surplus connections, Host headers) have their own tests below the
table.
"""

import contextlib
import errno
import hashlib
import importlib.util
import io
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from idx_files import idx_bytes

import latentatlas
from latentatlas._lock import LOCK, FolderLock
from latentatlas.cli import main
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError
from latentatlas.run_folder import verify_files, write_manifest
from latentatlas.run_training import train_run
from latentatlas.train import Callback, NonFiniteLossError
from latentatlas.viz.explorer import page_server

SRC = str(Path(latentatlas.__file__).parents[1])


# ---------------------------------------------------------------------------------------------------- fixtures

def train_args(tiny, *more):
    return ["train", "--preset", "shallow-2d", "--data", str(tiny), "--epochs", "1", "--device", "cpu", *more]


@pytest.fixture(scope="module")
def fitted(tiny):
    from latentatlas import Autoencoder

    with np.load(tiny) as f:
        x = f["x_train"].reshape(240, -1)
    return Autoencoder(preset="shallow-2d", epochs=1, device="cpu", random_state=0).fit(x)


@pytest.fixture
def ws(tmp_path, base_run, tiny, fitted, monkeypatch):
    """The workspace: a copy of the finished run and a folder of the user's."""
    shutil.copytree(base_run, tmp_path / "run", symlinks=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "notes.txt").write_text("the user's notes\n")
    (tmp_path / "outside" / "page.html").write_text("<html><body>the user's own page</body></html>\n")
    os.chdir(tmp_path)  # where a case names the run by a relative path
    ctx = SimpleNamespace(tmp=tmp_path, run=tmp_path / "run", outside=tmp_path / "outside", tiny=tiny,
                          est=fitted, held=[], mp=monkeypatch)
    yield ctx
    os.chdir(SRC)
    for p in ctx.held:
        if isinstance(p, socket.socket):
            p.close()
        else:
            p.stdin.close()
            p.wait(timeout=30)


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: a file's SHA-256, a link's target, a folder's presence (lock files aside)."""
    seen = {}
    for p in sorted(root.rglob("*")):  # rglob does not descend into linked folders; the link itself is recorded
        rel = str(p.relative_to(root))
        if p.is_symlink():
            seen[rel] = ("link", os.readlink(p))
        elif p.name == LOCK:
            continue  # rewritten by every writer that takes the lock, then refuses
        elif p.is_file():
            seen[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            seen[rel] = "folder"
    return seen


# ------------------------------------------------------------------------------------------------ case makers
def project(ctx, **files):
    """A user's project folder: a config.json that is not a run's, and whatever else is given."""
    folder = ctx.tmp / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"learning_rate": 0.1, "author": "me"}))
    (folder / "thesis.tex").write_text("\\documentclass{article}\n")
    (folder / "src" / "main.py").write_text("print('mine')\n")
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text)
    return folder


def npz(ctx, **overrides):
    with np.load(ctx.tiny) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(overrides)
    path = ctx.tmp / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def npy_folder(ctx, **overrides):
    folder = ctx.tmp / "arrays"
    folder.mkdir()
    with np.load(ctx.tiny) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(overrides)
    for k, a in arrays.items():
        if isinstance(a, bytes):
            (folder / f"{k}.npy").write_bytes(a)
        else:
            np.save(folder / f"{k}.npy", a)
    return str(folder)


def npy_header(shape, dtype="<i8") -> bytes:
    """A valid .npy header claiming ``shape``, followed by only 16 bytes of data."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 16


def idx_folder(ctx, train_images=None, train_labels=None, test_images=None):
    """An MNIST-style folder of 20 + 10 images, with the given raw bytes in place of a file."""
    folder = ctx.tmp / "idx"
    folder.mkdir()
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), gz=True),
             "train-labels-idx1-ubyte.gz": idx_bytes(rng.integers(0, 10, 20, dtype=np.uint8), gz=True),
             "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), gz=True),
             "t10k-labels-idx1-ubyte.gz": idx_bytes(rng.integers(0, 10, 10, dtype=np.uint8), gz=True)}
    if train_images is not None:
        files["train-images-idx3-ubyte.gz"] = train_images
    if train_labels is not None:
        files["train-labels-idx1-ubyte.gz"] = train_labels
    if test_images is not None:
        files["t10k-images-idx3-ubyte.gz"] = test_images
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return str(folder)


def gzip_stream(*parts, zeros: int = 0) -> bytes:
    """gzip of ``parts`` then ``zeros`` zero bytes, compressed in chunks (never held decompressed)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(b"".join(parts))]
    chunk = bytes(1 << 20)
    for _ in range(zeros >> 20):
        out.append(c.compress(chunk))
    out.append(c.flush())
    return b"".join(out)


def idx_header(code: int, shape) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def image_folder(ctx, n_per_class: dict):
    from PIL import Image

    folder = ctx.tmp / "images"
    for cls, n in n_per_class.items():
        (folder / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8), color=i * 30).save(folder / cls / f"{i}.png")
    return str(folder)


def resign(ctx, damage, *command):
    """Damage the run, then re-sign it: a manifest that matches its damage. Returns ``command`` on the run
    (default: evaluate, which reads all but the latents and metrics it recomputes)."""
    damage(ctx.run)
    with FolderLock(ctx.run):  # the guard writes into a run folder only under its lock
        write_manifest(ctx.run)
    command = command or ("evaluate",)
    return [command[0], str(ctx.run), *command[1:]]


def edit_json(name, **changes):
    """A damage: ``changes`` made to the run's JSON file ``name``."""
    return lambda r: (r / name).write_text(json.dumps({**json.loads((r / name).read_text()), **changes}))


def edit_weights(change):
    """A damage: ``change(tensor)`` of the run's first weight tensor, saved in its place."""
    from safetensors.torch import load_file, save_file

    def damage(run):
        state = load_file(str(run / "model.safetensors"))
        first = sorted(state)[0]
        state[first] = change(state[first])
        save_file(state, str(run / "model.safetensors"))

    return damage


def edit_latents(**changes):
    """A damage: the run's latents.npz with ``changes`` (None drops an array)."""
    def damage(run):
        with np.load(run / "latents.npz") as f:
            arrays = {k: f[k] for k in f.files}
        arrays.update(changes)
        np.savez(run / "latents.npz", **{k: v for k, v in arrays.items() if v is not None})

    return damage


def probed(ctx, **changes):
    """A damage: the run as probed (a probe.json and its figure), with ``changes`` to probe.json."""
    def damage(run):
        (run / "figures" / "probe_curves.png").write_bytes(b"\x89PNG")
        result = {"run": "run", "corruptions": {"noise": [{"level": 0.0, "bce": 0.5, "mse": 0.1, "knn5": 0.5,
                                                           "shift": 0.0, "shift_rel": 0.0}]},
                  "labels": {"noise": "noise sigma"}, "novelty": None, "figures": ["figures/probe_curves.png"]}
        (run / "probe.json").write_text(json.dumps({**result, **changes}))

    return resign(ctx, damage, "report", "--out", str(ctx.tmp / "report.html"))


def non_utf8(ctx, name: str) -> Path:
    """A path in the workspace whose name holds the bytes 0xff 0xfe (not UTF-8, before its suffix), as Python
    holds it."""
    stem, dot, suffix = name.partition(".")
    return ctx.tmp / (stem + b"\xff\xfe".decode("utf-8", "surrogateescape") + dot + suffix)


def run_named(ctx, name: str) -> Path:
    """A copy of the run under another name."""
    shutil.copytree(ctx.run, ctx.tmp / name if isinstance(name, str) else name, symlinks=True)
    return ctx.tmp / name


def fails(error: BaseException):
    """A stand-in that raises ``error`` (patched over the function where the machine would run out)."""
    def raiser(*args, **kwargs):
        raise error

    return raiser


class OutOfMemoryError(RuntimeError):
    """As torch names a GPU's (torch.cuda.OutOfMemoryError), without needing one."""


HOLD = """
import fcntl, json, os, socket, sys
fd = os.open(os.path.join(sys.argv[1], ".latentatlas.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, json.dumps({"latentatlas": "test", "pid": os.getpid(), "host": socket.gethostname(), "since": "now"}).encode())
print("held", flush=True)
sys.stdin.read()
"""


def hold(ctx, folder):
    """Another process holds the folder's lock (as a training run does) until the test ends."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline() == "held\n"
    ctx.held.append(p)


def link(path: Path, target: Path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target, target_is_directory=target.is_dir())


def outside_figures(ctx):
    (ctx.outside / "figs").mkdir()
    (ctx.outside / "figs" / "loss_curves.png").write_bytes(b"the user's own figure")
    link(ctx.run / "figures", ctx.outside / "figs")


def sweep_spec(ctx, text, *more):
    pytest.importorskip("optuna", reason="the sweep extra is not installed")
    (ctx.tmp / "spec.toml").write_text(text)
    return ["sweep", str(ctx.tmp / "spec.toml"), "--out", str(ctx.tmp / "sweep"), *more]


class Raise(Callback):
    """Raises ``error`` (or calls it on the trainer) after the first step: an interruption mid-run."""

    def __init__(self, error):
        self.error = error

    def on_step_end(self, trainer, step):
        if isinstance(self.error, BaseException):
            raise self.error
        self.error(trainer)


def poison(trainer):
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))


def save_over(ctx, folder):
    return lambda: ctx.est.save(folder, overwrite=True)


def retrain(ctx, error):
    """``train_run`` over the finished run (overwrite) with a callback that interrupts it."""
    cfg = RunConfig(preset="shallow-2d", data=str(ctx.tiny), epochs=3, device="cpu")
    return lambda: train_run(cfg, ctx.run, overwrite=True, progress=False, callbacks=[Raise(error)])


# name -> (make(ctx) -> CLI arguments or a callable, expected: a message fragment, or (exception type, fragment))
CASES = {
    # 1. Only its own folders are ever replaced.
    "1 overwrite of a project that holds config.json": (
        lambda c: train_args(c.tiny, "--out", str(project(c)), "--overwrite"), "is not a run folder: refusing to overwrite"),
    "1 resume into a project keeps its hidden temp files": (
        lambda c: train_args(c.tiny, "--out", str(project(c, __draft__abcd1234__tmp="mine", __notes__tmp="mine")),
                             "--resume"), "is not a run folder: refusing to resume"),
    "1 a manifest.json that is not latentatlas's proves nothing": (
        lambda c: train_args(c.tiny, "--out", str(project(c, manifest__json='{"name": "app", "files": {}}')),
                             "--overwrite"), "is not a run folder: refusing to overwrite"),
    "1 save(overwrite=True) over a project": (
        lambda c: save_over(c, project(c)), (LatentAtlasError, "is not a run folder")),
    "1 a run-like folder (config and checkpoint) that latentatlas did not mark": (
        lambda c: train_args(c.tiny, "--out", str(project(c, checkpoint__json="{}")), "--overwrite"),
        "is not a run folder: refusing to overwrite"),

    # 2. Replacing a run is atomic: whatever stops the new run, the old one is as it was.
    "2 Ctrl-C while the replacement trains": (lambda c: retrain(c, KeyboardInterrupt()), (KeyboardInterrupt, "")),
    "2 a NaN loss in the replacement": (lambda c: retrain(c, poison), (NonFiniteLossError, "non-finite")),
    "2 a full disk while the replacement is written": (
        lambda c: retrain(c, OSError(errno.ENOSPC, "No space left on device", "checkpoint.safetensors")),
        (OSError, "No space left")),

    # 3. One writer per run folder.
    "3 train --overwrite while another process writes the run": (
        lambda c: hold(c, c.run) or train_args(c.tiny, "--out", str(c.run), "--overwrite"),
        "is being written by another latentatlas process (pid "),
    "3 evaluate while another process writes the run": (
        lambda c: hold(c, c.run) or ["evaluate", str(c.run)], "is being written by another latentatlas process"),
    "3 plot while another process writes the run": (
        lambda c: hold(c, c.run) or ["plot", str(c.run)], "is being written by another latentatlas process"),
    "3 probe while another process writes the run": (
        lambda c: hold(c, c.run) or ["probe", str(c.run), "--noise", "0:0.2:2"],
        "is being written by another latentatlas process"),
    "3 export into a run another process writes": (
        lambda c: pytest.importorskip("onnxscript") and hold(c, c.run) or ["export", str(c.run), "--onnx"],
        "is being written by another latentatlas process"),
    "3 save(overwrite=True) while another process writes the folder": (
        lambda c: hold(c, c.run) or save_over(c, c.run),
        (LatentAtlasError, "is being written by another latentatlas process")),

    # 4. Outputs never clobber inputs.
    "4 explore onto the run's own weights": (
        lambda c: ["explore", str(c.run), "--out", str(c.run / "model.safetensors")], "is in the run folder"),
    "4 report onto the user's own page": (
        lambda c: ["report", str(c.run), "--out", str(c.outside / "page.html")], "latentatlas did not write it"),
    "4 explore onto the user's notes": (
        lambda c: ["explore", str(c.run), "--out", str(c.outside / "notes.txt")], "latentatlas did not write it"),
    "4 report onto a link": (
        lambda c: link(c.tmp / "report.html", c.outside / "page.html") or ["report", str(c.run), "--out",
                                                                            str(c.tmp / "report.html")],
        "is a link: refusing to write through it"),

    "4 probe --out onto the run's own weights": (
        lambda c: ["probe", str(c.run), "--out", str(c.run / "model.safetensors")], "is in the run folder"),
    "4 probe --out onto the user's notes": (
        lambda c: ["probe", str(c.run), "--out", str(c.outside / "notes.txt")], "latentatlas did not write it"),
    "4 compare --out over the user's compare.csv": (
        lambda c: (c.outside / "compare.csv").write_text("mine\n") and ["compare", str(c.run), "--baselines", "",
                                                                        "--out", str(c.outside)],
        "compare.csv exists and latentatlas did not write it"),
    "4 explore().save over the user's notes": (
        lambda c: lambda: c.est.explore(np.zeros((4, 64), np.uint8)).save(c.outside / "notes.txt"),
        (LatentAtlasError, "latentatlas did not write it")),
    "4 bench --json onto the user's notes": (
        lambda c: ["bench", "--preset", "shallow-2d", "--data", str(c.tiny), "--epochs", "1", "--device", "cpu",
                   "--json", str(c.outside / "notes.txt")], "latentatlas did not write it"),

    # 5. No write follows a link out of the run folder.
    "5 plot through a figures folder that links outside": (
        lambda c: outside_figures(c) or ["plot", str(c.run)], "figures is a link: refusing to write through it"),
    "5 evaluate through a lock file that links outside": (
        lambda c: link(c.run / LOCK, c.outside / "notes.txt") or ["evaluate", str(c.run)],
        "is a link: refusing to write through it"),
    "5 save through a lock file that links outside": (
        lambda c: link(c.run / LOCK, c.outside / "notes.txt") or save_over(c, c.run),
        (LatentAtlasError, "is a link: refusing to write through it")),

    "5 plot through a linked figures folder, the run named by a relative path": (
        lambda c: outside_figures(c) or ["plot", "run"], "figures is a link: refusing to write through it"),
    "5 probe through a figures folder that links outside": (
        lambda c: outside_figures(c) or ["probe", str(c.run), "--noise", "0:0.2:2", "--occlude", ""],
        "figures is a link: refusing to write through it"),
    "5 probe through a linked figures folder, the run named by a relative path": (
        lambda c: outside_figures(c) or ["probe", "run", "--noise", "0:0.2:2", "--occlude", ""],
        "figures is a link: refusing to write through it"),

    # 6. Sizes are checked before memory is spent.
    "6 a gzip IDX that inflates far past its header": (
        lambda c: train_args(idx_folder(c, train_images=gzip_stream(idx_header(0x08, (20, 28, 28)), bytes(20 * 784),
                                                                    zeros=64 << 20))),
        "train-images-idx3-ubyte.gz: trailing bytes"),
    "6 a gzip IDX whose header claims 2^32 images": (
        lambda c: train_args(idx_folder(c, train_images=gzip_stream(idx_header(0x08, (2**32 - 1, 28, 28)), bytes(784)),
                                        train_labels=gzip_stream(idx_header(0x08, (2**32 - 1,)), bytes(8)))),
        "more than this machine's memory"),
    "6 an .npy whose header claims 10^15 labels": (
        lambda c: train_args(npy_folder(c, y_train=npy_header((10**15,)))), "y_train.npy: its header's"),
    "6 an .npz member whose header claims an absurd shape": (
        lambda c: train_args(absurd_npz(c)), "more than this machine's memory"),
    "6 labels far beyond any number of classes": (
        lambda c: train_args(npz(c, y_train=np.r_[np.zeros(239, np.int64), 10**9])), "label 1000000000 is beyond"),
    "6 IDX labels beyond 65,536 classes": (
        lambda c: train_args(idx_folder(c, train_labels=idx_bytes(np.full(20, 70_000, ">i4"), gz=True))),
        "label 70000 is beyond"),
    "6 an unbounded --image-size": (
        lambda c: train_args(image_folder(c, {"a": 3, "b": 3}), "--image-size", "100000"),
        "image_size=100000 is out of range"),
    "6 a network larger than the machine's memory": (
        lambda c: train_args(c.tiny, "--preset", "deep-2d", "--hidden-sizes", "4000000000"),
        "more than this machine's memory"),

    "6 an honest gzip IDX of 2^20 images beside 20 labels": (
        lambda c: train_args(idx_folder(c, train_images=gzip_stream(idx_header(0x08, (1 << 20, 28, 28)),
                                                                    zeros=(1 << 20) * 784))),
        "20 labels for 1048576 images: labels of the wrong length"),
    "6 an honest .npz of 2^20 images beside 240 labels": (
        lambda c: train_args(honest_npz(c, 1 << 20)), "1048576 train images but labels"),
    "6 an IDX folder whose test images claim 2^30 of 10 labels": (
        lambda c: train_args(idx_folder(c, test_images=gzip_stream(idx_header(0x08, (1 << 30, 28, 28)),
                                                                   bytes(784)))),
        "10 labels for 1073741824 images"),

    # 7. Every refusal is one line.
    "7 big-endian float pixels in an .npz": (
        lambda c: train_args(npz(c, x_train=np.zeros((240, 8, 8), ">f4"), x_test=np.zeros((60, 8, 8), ">f4"))),
        "big-endian"),
    "7 big-endian float pixels in a folder of .npy": (
        lambda c: train_args(npy_folder(c, x_train=np.zeros((240, 8, 8), ">f8"), x_test=np.zeros((60, 8, 8), ">f8"))),
        "big-endian"),
    "7 a seed beyond 64 bits": (lambda c: train_args(c.tiny, "--seed", str(2**70)), f"seed={2**70} is out of range"),
    "7 a seed just past torch's 63 bits": (lambda c: train_args(c.tiny, "--seed", str(2**63)), "is out of range"),
    "7 a device torch knows but cannot train on (meta)": (
        lambda c: train_args(c.tiny, "--device", "meta"), "not on meta devices"),
    "7 a device torch knows but cannot train on (mps)": (
        lambda c: train_args(c.tiny, "--device", "mps"), "not on mps devices"),
    "7 an image folder of one image": (
        lambda c: train_args(image_folder(c, {"a": 1})), "at least 2 are needed"),
    "7 an image folder with an empty test split": (
        lambda c: (Path(image_folder(c, {"train/a": 2, "test/a": 0})) and train_args(str(c.tmp / "images"))),
        "no PNG or JPEG images found"),
    "7 a re-signed run whose config.json is a list": (
        lambda c: resign(c, lambda r: (r / "config.json").write_text("[1, 2]")), "config.json: not a run config"),
    "7 a re-signed run whose data is a number": (
        lambda c: resign(c, lambda r: (r / "config.json").write_text(
            json.dumps({**json.loads((r / "config.json").read_text()), "data": 5}))), "config.json: data=5 is not a data set"),
    "7 a re-signed run whose weights are another model's": (
        lambda c: resign(c, lambda r: __import__("safetensors.torch").torch.save_file(
            {"x": torch.zeros(3)}, str(r / "model.safetensors"))), "no decoder biases"),
    "7 a re-signed run whose history is not a list": (
        lambda c: resign(c, lambda r: (r / "history.json").write_text('{"epoch": 1}')), "not a latentatlas history"),
    "7 float labels in a folder of .npy": (
        lambda c: train_args(npy_folder(c, y_train=np.arange(240) % 10 + 0.5)), "y_train.npy: labels of dtype float64"),
    "7 NaN labels in a folder of .npy": (
        lambda c: train_args(npy_folder(c, y_train=np.full(240, np.nan))), "(some NaN)"),
    "7 negative labels in an .npz": (
        lambda c: train_args(npz(c, y_test=-(np.arange(60) % 10))), "a negative label (-9)"),
    "7 float labels in an IDX file": (
        lambda c: train_args(idx_folder(c, train_labels=idx_bytes(np.arange(20, dtype=">f4"), gz=True))),
        "labels of dtype float32"),

    "7 a re-signed run whose config.json is nested 100,000 deep": (
        lambda c: resign(c, lambda r: (r / "config.json").write_text("[" * 100_000 + "]" * 100_000)),
        "config.json: unreadable JSON (nested too deeply)"),
    "7 a re-signed run whose history.json is nested 100,000 deep": (
        lambda c: resign(c, lambda r: (r / "history.json").write_text("[" * 100_000 + "]" * 100_000), "plot"),
        "history.json: unreadable JSON (nested too deeply)"),
    "7 a re-signed run whose weights hold a NaN": (
        lambda c: resign(c, edit_weights(lambda t: torch.full_like(t, float("nan")))),
        "holds NaN or infinite values"),
    "7 a re-signed run whose weights hold an infinity": (
        lambda c: resign(c, edit_weights(lambda t: torch.full_like(t, float("inf"))), "plot"),
        "holds NaN or infinite values"),
    "7 a re-signed run whose weights are complex": (
        lambda c: resign(c, edit_weights(lambda t: t.to(torch.complex64)), "explore", "--out", str(c.tmp / "e.html")),
        "is complex64: latentatlas weights are real floating-point numbers"),
    "7 a re-signed run whose weights are integers": (
        lambda c: resign(c, edit_weights(lambda t: t.to(torch.int32))), "is int32: latentatlas weights are real"),
    "7 a re-signed run whose metrics are not numbers": (
        lambda c: resign(c, edit_json("metrics.json", knn5=[1], bce_test={}), "report", "--out", str(c.tmp / "r.html")),
        "metrics.json: not a latentatlas metrics file (its 'bce_test' is not a number)"),
    "7 a re-signed run whose history's losses are text": (
        lambda c: resign(c, lambda r: (r / "history.json").write_text('[{"epoch": 1, "train_loss": "low"}]'), "plot"),
        "history.json: not a latentatlas history (epoch 1's 'train_loss' is not a number)"),
    "7 a re-signed run whose latents lack z_test": (
        lambda c: resign(c, edit_latents(z_test=None), "plot"), "latents.npz: no z_test or y_test"),
    "7 a re-signed run whose latents lack y_train": (
        lambda c: resign(c, edit_latents(y_train=None), "compare", "--baselines", "", "--out", str(c.tmp / "cmp")),
        "latents.npz: no z_train or y_train"),
    "7 a re-signed run whose latents are complex": (
        lambda c: resign(c, edit_latents(z_test=np.zeros((60, 2), np.complex64)), "explore", "--out",
                         str(c.tmp / "e.html")), "z_test is complex64 of shape (60, 2), not real numbers"),
    "7 a re-signed run whose latents hold NaN": (
        lambda c: resign(c, edit_latents(z_test=np.full((60, 2), np.nan, np.float32)), "report", "--out",
                         str(c.tmp / "r.html")), "z_test holds NaN or infinite values"),
    "7 a re-signed run whose probe.json shows /etc/passwd as a figure": (
        lambda c: probed(c, figures=["/etc/passwd"]), "probe.json: not a latentatlas probe result (its figures"),
    "7 a re-signed run whose probe.json levels are text": (
        lambda c: probed(c, corruptions={"noise": [{"level": "high"}]}), "probe.json: not a latentatlas probe result"),
    "7 a re-signed run whose probe.json is nested 100,000 deep": (
        lambda c: probed(c) and resign(c, lambda r: (r / "probe.json").write_text("[" * 100_000 + "]" * 100_000),
                                       "report", "--out", str(c.tmp / "report.html")),
        "probe.json: unreadable JSON (nested too deeply)"),

    "7 a non-UTF-8 TensorBoard folder, refused before training": (
        lambda c: train_args(c.tiny, "--out", str(c.tmp / "new"), "--tensorboard", str(non_utf8(c, "tb"))),
        "tb\ufffd\ufffd: TensorBoard writes only folders whose names are UTF-8"),
    "7 a non-UTF-8 data path that does not exist": (
        lambda c: train_args(str(non_utf8(c, "data.npz")), "--out", str(c.tmp / "new")), "no such file or folder"),
    "7 a non-UTF-8 folder that is not a run": (
        lambda c: non_utf8(c, "notes").mkdir() or ["report", str(non_utf8(c, "notes")), "--out", str(c.tmp / "r.html")],
        "notes\ufffd\ufffd: not a run folder"),
    "7 a non-UTF-8 run explored onto the user's notes": (
        lambda c: ["explore", str(run_named(c, non_utf8(c, "run"))), "--out", str(c.outside / "notes.txt")],
        "latentatlas did not write it"),

    "7 Python: Autoencoder(device=None)": (
        lambda c: lambda: latentatlas.Autoencoder(preset="shallow-2d", device=None).fit(np.zeros((4, 64), np.uint8)),
        (LatentAtlasError, "device=None is not a device")),
    "7 Python: load_dataset(folder, image_size=0)": (
        lambda c: (lambda folder: lambda: load_dataset(folder, image_size=0))(image_folder(c, {"a": 2, "b": 2})),
        (LatentAtlasError, "image_size=0 is out of range")),
    "7 Python: load_dataset of a number": (lambda c: lambda: load_dataset(5), (LatentAtlasError, "data=5 is not a data set")),
    "7 Python: one transform given as a string, not a list": (
        lambda c: lambda: train_run(RunConfig(preset="shallow-2d", data=str(c.tiny), transforms="noise:sigma=0.1"),
                                    c.tmp / "new", progress=False),
        (LatentAtlasError, "transforms='noise:sigma=0.1' is not a list")),
    "7 Python: RunConfig whose data is a number": (
        lambda c: lambda: train_run(RunConfig(preset="shallow-2d", data=5), c.tmp / "new", progress=False),
        (LatentAtlasError, "data=5 is not a data set")),

    "7 out of memory while the data is read (MemoryError)": (
        lambda c: c.mp.setattr("latentatlas.data.sources.load_npz", fails(MemoryError(
            "Unable to allocate 7.45 GiB for an array with shape (1000000000,) and data type float64")))
        or train_args(c.tiny, "--out", str(c.tmp / "new")), "out of memory (Unable to allocate 7.45 GiB"),
    "7 out of memory in torch's CPU allocator while training": (
        lambda c: c.mp.setattr("latentatlas.run_training.build_trainer", fails(RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
            "allocate 8000000000 bytes. Error code 12 (Cannot allocate memory)")))
        or train_args(c.tiny, "--out", str(c.tmp / "new")), "out of memory ([enforce fail"),
    "7 out of memory on a GPU while the run is loaded": (
        lambda c: c.mp.setattr("latentatlas.runs.load_weights", fails(OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 20.00 GiB")))
        or ["evaluate", str(c.run)], "out of memory (CUDA out of memory. Tried to allocate 20.00 GiB)"),

    "7 small: evaluate given the run's config.json": (
        lambda c: ["evaluate", str(c.run / "config.json")], "config.json is a file, not a run folder: give the folder"),
    "7 small: report given the run's weights": (
        lambda c: ["report", str(c.run / "model.safetensors"), "--out", str(c.tmp / "r.html")],
        "model.safetensors is a file, not a run folder"),
    "7 small: explore given the run's config.json, by a relative path": (
        lambda c: ["explore", "run/config.json", "--out", str(c.tmp / "e.html")],
        f"run{os.sep}config.json is a file, not a run folder: give the folder that holds it (run)"),
    # scaling auto min-max scales such data; taken as pixels, they are refused
    "7 small: float pixels just past 1 are shown with the digits that differ": (
        lambda c: train_args(npz(c, x_train=np.full((240, 8, 8), 1.0000001, np.float32),
                                 x_test=np.zeros((60, 8, 8), np.float32)), "--scaling", "pixels"),
        "range over [1.0000001, 1.0000001]"),
    "7 small: a float pixel a hair below 0 is shown as itself": (
        lambda c: train_args(npz(c, x_train=np.full((240, 8, 8), -1e-9, np.float32),
                                 x_test=np.zeros((60, 8, 8), np.float32)), "--scaling", "pixels"), "(min -1e-09)"),
    "7 small: an occlusion that does not fit the 8 x 8 images, given": (
        lambda c: ["probe", str(c.run), "--occlude", "0:14:8"], "a patch of side 10 does not fit in images of 8 x 8"),

    "7 a probe of 10^8 noise levels": (
        lambda c: ["probe", str(c.run), "--noise", "0:1:100000000"], "at most 100 are probed"),
    "7 a probe rotation of 10^9 degrees": (
        lambda c: ["probe", str(c.run), "--rotate", "0,1000000000"], "must lie in [-360, 360]"),
    "7 a probe of 200 listed levels": (
        lambda c: ["probe", str(c.run), "--noise", ",".join(["0.1"] * 200)], "at most 100 are probed"),

    # 8. Sweeps fail early and clearly.
    "8 a data typo in a sweep's second grid value": (
        lambda c: sweep_spec(c, '[search]\ndata = ["digits", "digts"]\n[fixed]\nepochs = 1\n'),
        '[search] data = "digts": unknown data set'),
    "8 a device no trial can train on": (
        lambda c: sweep_spec(c, '[search]\nseed = [0, 1]\n[fixed]\ndata = "digits"\ndevice = "meta"\n'),
        '[fixed] device = "meta"'),
    "8 a grid that repeats a point": (
        lambda c: sweep_spec(c, '[search]\nseed = [0, 1, 0]\n[fixed]\ndata = "digits"\n'), "seed lists 0 twice"),
    "8 in-memory storage with several workers": (
        lambda c: sweep_spec(c, '[search]\nseed = [0, 1]\n[fixed]\ndata = "digits"\n', "--storage",
                             "sqlite:///:memory:", "--workers", "2"), "an in-memory study"),
    "8 a huge grid": (
        lambda c: sweep_spec(c, "[search]\nseed = %s\nepochs = %s\nbatch_size = %s\n[fixed]\ndata = \"digits\"\n"
                             % (list(range(100)), list(range(1, 101)), list(range(1, 101)))),
        "the grid has 1,000,000 points"),

    # 9. The explorer's server is bounded: its bounds are checked, and a busy port refused before the page is written.
    "9 explore --serve on a port another program holds": (
        lambda c: ["explore", str(c.run), "--out", str(c.tmp / "e.html"), "--serve", "--port", str(busy_port(c))],
        "cannot serve on 127.0.0.1:"),
    "9 a server that takes no connection": (
        lambda c: lambda: page_server(c.outside / "page.html", max_connections=0),
        (LatentAtlasError, "max_connections=0 is out of range")),
    "9 a server whose requests may take for ever": (
        lambda c: lambda: page_server(c.outside / "page.html", request_timeout=float("inf")),
        (LatentAtlasError, "request_timeout=inf is out of range")),
    "9 a server whose idle connections never close": (
        lambda c: lambda: page_server(c.outside / "page.html", idle_timeout=float("nan")),
        (LatentAtlasError, "idle_timeout=nan is out of range")),
}


def busy_port(ctx) -> int:
    """A port on 127.0.0.1 that another program listens on until the test ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    ctx.held.append(sock)
    return sock.getsockname()[1]


def honest_npz(ctx, n: int, labels: bool = False, path=None):
    """An .npz whose x_train member honestly holds ``n`` 28 x 28 images of zeros, deflated (1 MB a GB); with
    ``labels``, as many labels."""
    import zipfile

    path = path or ctx.tmp / "honest.npz"
    with np.load(ctx.tiny) as f:
        arrays = {k: f[k] for k in f.files}
    header = npy_header((n, 28, 28), "|u1")[:-16]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x_train.npy", "w", force_zip64=True) as member:
            member.write(header)
            for _ in range(n * 784 >> 24):
                member.write(bytes(1 << 24))
        for k in ("y_train", "x_test", "y_test"):
            buf = io.BytesIO()
            np.save(buf, np.zeros(n, np.int64) if k == "y_train" and labels else arrays[k])
            z.writestr(f"{k}.npy", buf.getvalue())
    return str(path)


def absurd_npz(ctx):
    """An .npz whose x_train member claims 2^40 x 2^40 pixels (its data: 16 bytes)."""
    path = ctx.tmp / "absurd.npz"
    buf = io.BytesIO()
    with np.load(ctx.tiny) as f:
        np.savez(buf, **{k: f[k] for k in f.files})
    import zipfile

    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = npy_header((2**40, 2**40), "|u1") if info.filename == "x_train.npy" else src.read(info)
            dst.writestr(info.filename, data)
    return str(path)


def test_every_category_has_at_least_two_cases():
    counts = {}
    for name in CASES:
        counts[name.split()[0]] = counts.get(name.split()[0], 0) + 1
    assert sorted(counts) == [str(n) for n in range(1, 10)] and min(counts.values()) >= 2, counts
    # issue 26's kinds, three new cases each: other commands' outputs, their locks, links, honest sizes, bounds
    kinds = {"other commands' outputs": ("4 probe", "4 compare", "4 explore()", "4 bench"),
             "the lock of plot, probe, evaluate, export": ("3 plot", "3 probe", "3 evaluate", "3 export"),
             "links": ("5 plot through a linked", "5 probe"), "honest sizes": ("6 an honest", "6 an IDX folder"),
             "bounded work": ("7 a probe",), "the server's bounds": ("9 ",),
             "damaged, re-signed runs": ("7 a re-signed run whose config.json is nested", "7 a re-signed run whose w",
                                         "7 a re-signed run whose metrics", "7 a re-signed run whose history's",
                                         "7 a re-signed run whose latents", "7 a re-signed run whose probe"),
             "non-UTF-8 names": ("7 a non-UTF-8",), "bad values from Python": ("7 Python:",),
             "out of memory": ("7 out of memory",), "small": ("7 small:",)}
    for kind, prefixes in kinds.items():
        assert sum(name.startswith(prefixes) for name in CASES) >= 3, kind


@pytest.mark.parametrize("case", CASES)
def test_refusal(ws, case):
    make, expected = CASES[case]
    action = make(ws)
    before = snapshot(ws.tmp)
    if callable(action):
        kind, fragment = expected
        with pytest.raises(kind) as e:
            action()
        assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)
    else:
        r = CliRunner().invoke(main, action)
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.output
        assert "Traceback" not in r.output
    assert snapshot(ws.tmp) == before  # the run intact, nothing outside it touched, no partial output left


# ------------------------------------------------------------------------------- what is allowed still works
def test_overwrite_replaces_only_a_run_and_leaves_no_temp_folder(ws):
    old = snapshot(ws.run)
    r = CliRunner().invoke(main, train_args(ws.tiny, "--seed", "7", "--out", str(ws.run), "--overwrite"))
    assert r.exit_code == 0, r.output
    assert json.loads((ws.run / "config.json").read_text())["seed"] == 7 and snapshot(ws.run) != old
    verify_files(ws.run, json.loads((ws.run / "manifest.json").read_text())["files"])
    assert sorted(p.name for p in ws.tmp.iterdir()) == ["outside", "run"]  # nothing of the swap left beside


def test_overwrite_of_a_run_with_a_linked_figures_folder_leaves_the_target(ws):
    outside_figures(ws)
    before = snapshot(ws.outside)
    r = CliRunner().invoke(main, train_args(ws.tiny, "--out", str(ws.run), "--overwrite"))
    assert r.exit_code == 0, r.output
    assert snapshot(ws.outside) == before and not (ws.run / "figures").is_symlink()


def test_a_killed_fresh_run_with_no_epoch_leaves_no_folder(ws):
    cfg = RunConfig(preset="shallow-2d", data=str(ws.tiny), epochs=1, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, ws.tmp / "new", progress=False, callbacks=[Raise(KeyboardInterrupt())])
    assert not (ws.tmp / "new").exists()


def test_resume_clears_only_the_temp_files_of_its_own_writes(ws, tiny):
    (ws.run / ".model.safetensors.abcd1234.tmp").write_bytes(b"half a write")
    (ws.run / ".users-notes.tmp").write_text("mine")
    args = ["train", "--preset", "shallow-2d", "--data", str(tiny), "--epochs", "2", "--device", "cpu"]
    r = CliRunner().invoke(main, [*args, "--out", str(ws.run), "--resume"])
    assert r.exit_code == 0, r.output
    assert not (ws.run / ".model.safetensors.abcd1234.tmp").exists() and (ws.run / ".users-notes.tmp").exists()


def test_report_and_explore_replace_their_own_pages_and_others_only_with_overwrite(ws):
    for command in ("report", "explore"):
        page = ws.tmp / f"{command}.html"
        assert CliRunner().invoke(main, [command, str(ws.run), "--out", str(page)]).exit_code == 0
        r = CliRunner().invoke(main, [command, str(ws.run), "--out", str(page)])  # its own page: replaced
        assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", str(ws.run), "--out", str(ws.outside / "page.html"), "--overwrite"])
    assert r.exit_code == 0 and "latentatlas report" in (ws.outside / "page.html").read_text()


def test_non_utf8_names_work_where_the_file_system_allows_them(ws):
    """Names holding the bytes 0xff 0xfe (not UTF-8) for the data, the run, the pages, the figure and a saved
    model: each command works, each run loads again, and pages show the bytes as U+FFFD, as a terminal does."""
    from latentatlas import Autoencoder

    data, run, saved = non_utf8(ws, "data.npz"), non_utf8(ws, "run2"), non_utf8(ws, "saved")
    shutil.copy(ws.tiny, data)
    commands = [train_args(str(data), "--out", str(run)), ["evaluate", str(run)], ["plot", str(run)],
                ["probe", str(run), "--noise", "0,0.3", "--out", str(non_utf8(ws, "curves.png"))],
                ["report", str(run), "--out", str(non_utf8(ws, "report.html"))],
                ["explore", str(run), "--out", str(non_utf8(ws, "explore.html"))],
                ["compare", str(run), "--baselines", "", "--out", str(non_utf8(ws, "cmp"))]]
    for args in commands:
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, (args[0], r.output)
    assert json.loads((run / "config.json").read_text())["data"] == str(data)  # the name kept, byte for byte
    for page in ("report.html", "explore.html"):
        assert "run2\ufffd\ufffd" in non_utf8(ws, page).read_text(encoding="utf-8")
    ae = Autoencoder.load(run)
    ae.save(saved)
    assert Autoencoder.load(saved).transform(np.zeros((2, 64), np.uint8)).shape == (2, 2)


def test_probe_defaults_fit_each_runs_images(ws):
    """With no levels given, occlusion goes from no patch to half the side: 0..4 on 8 x 8 digits (it asked for
    0..14 of every run, refusing all of them), 0:14:8 on 28 x 28 as before."""
    from latentatlas.data.corruptions import get_corruption

    r = CliRunner().invoke(main, ["probe", str(ws.run)])
    assert r.exit_code == 0, r.output
    result = json.loads((ws.run / "probe.json").read_text())
    assert [row["level"] for row in result["corruptions"]["occlude"]] == [0, 1, 2, 3, 4]
    assert get_corruption("occlude").default_levels((28, 28)) == "0:14:8"
    assert get_corruption("occlude").default_levels(None) == get_corruption("rotate").default_levels(None) == ""


def test_gzip_is_decompressed_in_a_stream_capped_by_its_header(tmp_path):
    """A 200 MB inflation of a 10-image header: refused after at most the header's bytes, not after 200 MB."""
    import tracemalloc

    from latentatlas.data.readers import read_idx

    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_stream(idx_header(0x08, (10, 28, 28)), bytes(10 * 784), zeros=200 << 20))
    tracemalloc.start()
    with pytest.raises(LatentAtlasError, match="trailing bytes"):
        read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB while reading a {path.stat().st_size / 2**10:.0f} KiB file"


def test_a_download_is_checked_on_its_compressed_bytes_before_decompressing(monkeypatch):
    from latentatlas.data import readers, sources

    def never(*a):
        raise AssertionError("decompressed before the checksum was checked")

    monkeypatch.setattr(readers, "_gunzip_idx", never)
    bomb = gzip_stream(idx_header(0x08, (10, 28, 28)), zeros=64 << 20)
    for source in (sources.FashionMNIST(), sources.MNIST()):
        assert "checksum mismatch" in source._verify("train_images", bomb)


# ------------------------------------------------------------------------------------------------ concurrency
def cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "latentatlas", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


HOLDER = """
import sys, time
from pathlib import Path
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.run_training import train_run
from latentatlas.train import Callback

class WaitForGo(Callback):  # holds the run open after its first epoch until the test says go
    def on_epoch_end(self, trainer, record):
        Path(sys.argv[3]).touch()
        while not Path(sys.argv[4]).exists():
            time.sleep(0.05)

cfg = RunConfig(preset="shallow-2d", data=sys.argv[1], epochs=2, seed=1, device="cpu")
train_run(cfg, sys.argv[2], overwrite=True, progress=False, callbacks=[WaitForGo()])
"""


def consistent(run: Path, seed: int):
    """The folder is one run: every file the manifest lists matches it, and the config is the winner's."""
    verify_files(run, json.loads((run / "manifest.json").read_text())["files"])
    assert json.loads((run / "config.json").read_text())["seed"] == seed


@pytest.mark.parametrize("next_write", [["evaluate", "{run}"], ["plot", "{run}"],
                                        ["train", "--preset", "shallow-2d", "--data", "{tiny}", "--epochs", "1",
                                         "--device", "cpu", "--out", "{run}", "--overwrite"]])
def test_what_a_killed_overwrite_leaves_is_cleaned_by_the_next_write(ws, next_write):
    """train --overwrite killed (SIGKILL) after its first epoch leaves its half-trained replacement beside the run,
    as .run.XXXXXXXX.tmp; the next command that writes the run (under its lock) removes it, and only it: the run,
    a user's folder of a like name that latentatlas did not write, and the user's files stay."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    killed = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.tiny), str(ws.run), str(ws.tmp / "ready"),
                               str(ws.tmp / "never")], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (ws.tmp / "ready").exists():
            assert killed.poll() is None, killed.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        killed.kill()
        killed.wait(timeout=30)
    (stale,) = ws.tmp.glob(".run.*.tmp")
    assert (stale / LOCK).is_file() and not (stale / "manifest.json").exists()  # the replacement, half written
    (ws.tmp / ".run.users0001.tmp").mkdir()
    (ws.tmp / ".run.users0001.tmp" / "notes.txt").write_text("mine")  # named like ours, but not a run: kept
    old = snapshot(ws.run)
    args = [a.format(run=ws.run, tiny=ws.tiny) for a in next_write]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert not stale.exists() and (ws.tmp / ".run.users0001.tmp" / "notes.txt").read_text() == "mine"
    if args[0] == "evaluate":
        assert snapshot(ws.run) == old  # the same weights, data and code: the same files


def test_an_old_run_moved_aside_by_a_killed_swap_is_cleaned_by_the_next_write(ws):
    """Killed between its two renames, a swap leaves the old run beside the new one as .run.old.XXXXXXXX.tmp."""
    shutil.copytree(ws.run, ws.tmp / ".run.old.abcd1234.tmp")
    r = CliRunner().invoke(main, ["evaluate", str(ws.run)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in ws.tmp.iterdir()) == ["outside", "run"]


@contextlib.contextmanager
def training(ws, out):
    """A real training run (HOLDER) into ``out``, held open after its first epoch for the ``with`` block; then it
    finishes, and must finish cleanly. Yields the training process."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.tiny), str(out), str(ws.tmp / "ready"),
                              str(ws.tmp / "go")], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (ws.tmp / "ready").exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield first
    finally:
        (ws.tmp / "go").touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()


def test_a_second_writer_is_refused_naming_the_first(ws):
    out = ws.run
    with training(ws, out) as first:
        second = CliRunner().invoke(main, train_args(ws.tiny, "--seed", "2", "--out", str(out), "--overwrite"))
        err = second.output  # this test's own process is the second writer
        assert second.exit_code == 2, err
        assert err.strip().splitlines() == [err.strip()] and f"(pid {first.pid} on {socket.gethostname()}" in err, err
    consistent(out, seed=1)


def test_plot_probe_evaluate_and_export_are_refused_while_a_run_trains(ws):
    """Against a real training run (not a stand-in holding the lock): each writer into the run refuses in one line,
    naming the trainer, writes nothing, and the run finishes as the trainer's alone."""
    commands = [["plot", "{run}"], ["probe", "{run}", "--noise", "0:0.2:2"], ["evaluate", "{run}"]]
    if importlib.util.find_spec("onnxscript") is not None:
        commands.append(["export", "{run}", "--onnx"])
    with training(ws, ws.run) as first:
        for command in commands:
            r = CliRunner().invoke(main, [a.format(run=ws.run) for a in command])
            assert r.exit_code == 2, r.output
            assert r.output.strip().splitlines() == [r.output.strip()], r.output
            assert "is being written by another latentatlas process" in r.output and f"pid {first.pid}" in r.output
    consistent(ws.run, seed=1)
    assert not list(ws.run.rglob("probe*")) and not list(ws.run.rglob("*.onnx"))


def test_two_writers_started_together_into_a_new_folder_one_wins(ws):
    out = ws.tmp / "race"
    procs = [cli(*train_args(ws.tiny, "--seed", str(seed), "--epochs", "3", "--out", str(out))) for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results  # exactly one wins
    loser = next(err for code, err in results if code == 2)
    # Refused as busy while the winner writes, or as existing once it has finished: one line either way.
    assert len(loser.strip().splitlines()) == 1 and ("is being written by another latentatlas process" in loser
                                                     or "already exists" in loser), loser
    winner = 1 + [code for code, _ in results].index(0)
    consistent(out, seed=winner)


# -------------------------------------------------------------------------------------------- fault injection
def limited(size: int):
    """A child process whose files may not grow past ``size`` bytes (``ulimit -f``); SIGXFSZ ignored, so a write
    past it fails with EFBIG instead of killing the process."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


FAULTS = """
import json, sys
import numpy as np
from click.testing import CliRunner
from latentatlas import Autoencoder
from latentatlas.cli import main
from latentatlas.errors import LatentAtlasError

jobs, results = json.loads(sys.argv[1]), {}
for name, job in jobs.items():
    if name == "save":  # deep-2d's weights (over 1 MB) cannot be written under the limit
        with np.load(job["data"]) as f:
            ae = Autoencoder(preset="deep-2d", epochs=1, device="cpu", random_state=0).fit(f["x_train"].reshape(240, -1))
        try:
            ae.save(job["path"], overwrite=True)
            results[name] = [0, ""]
        except (LatentAtlasError, OSError) as e:
            results[name] = [2, f"error: {e}"]
    else:
        r = CliRunner().invoke(main, job)
        results[name] = [r.exit_code, r.output]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def faults(tmp_path_factory, base_run, tiny, fitted):
    """One child process under a 4 KiB file-size limit (enough for a config.json, not for a checkpoint, figure,
    report or model) tries each write in turn: (what each gave, the workspace before, the workspace after)."""
    root = tmp_path_factory.mktemp("faults")
    shutil.copytree(base_run, root / "run", symlinks=True)
    assert CliRunner().invoke(main, ["report", str(root / "run"), "--out", str(root / "report.html")]).exit_code == 0
    fitted.save(root / "saved")
    jobs = {"train --overwrite": train_args(tiny, "--out", str(root / "run"), "--overwrite"),
            "train into a new folder": train_args(tiny, "--out", str(root / "new")),
            "report": ["report", str(root / "run"), "--out", str(root / "report.html")],
            "save": {"data": str(tiny), "path": str(root / "saved")}}
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1"}
    before = snapshot(root)
    p = subprocess.run([sys.executable, "-c", FAULTS, json.dumps(jobs)], env=env, capture_output=True, text=True,
                       preexec_fn=limited(4096), timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), before, snapshot(root)


@pytest.mark.parametrize("what", ["train --overwrite", "train into a new folder", "report", "save"])
def test_a_full_disk_leaves_one_line_and_the_previous_run(faults, what):
    results, before, after = faults
    code, output = results[what]
    # A write that fails mid-run follows the run's own lines (what trains, then its progress off a terminal:
    # "training ...", "training: 2 / 2 batches ..."): the error is still one line, the last.
    *steps, last = output.strip().splitlines()
    assert code == 2 and last.startswith("error: ") and "Traceback" not in output, output
    assert all(line.startswith("training") for line in steps) and len(steps) <= 2, output
    assert "File too large" in last, last
    assert after == before  # the old run, report and model intact; no new folder, no temp file left


# -------------------------------------------------------------------------------------------- the server
def serve(page: bytes, timeout: float, **bounds):
    from latentatlas.viz.explorer import PageServer

    lines = []
    server = PageServer(page, "127.0.0.1", 0, idle_timeout=timeout, log=lines.append, **bounds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, lines


def idle(sock):
    pass


def half_request(sock):
    sock.sendall(b"GET / HT")


def reset_mid_page(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % sock.getpeername()[1])
    sock.recv(1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset


@pytest.mark.parametrize("client,expected", [(idle, "timed out"), (half_request, "timed out"),
                                             (reset_mid_page, "disconnected")])
def test_the_server_drops_idle_and_vanished_clients_in_one_line(client, expected, capfd):
    server, lines = serve(b"x" * (32 << 20), timeout=0.5)  # a page far larger than any socket buffer
    try:
        sock = socket.create_connection(("127.0.0.1", server.server_port))
        sock.settimeout(10)
        client(sock)
        if client is not reset_mid_page:
            t0 = time.monotonic()
            assert sock.recv(1024) == b""  # the server closed the idle connection
            assert time.monotonic() - t0 < 5
        sock.close()
        deadline = time.monotonic() + 10
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(lines) == 1 and expected in lines[0] and "\n" not in lines[0], lines
        # Still serving others.
        with socket.create_connection(("127.0.0.1", server.server_port)) as s:
            s.sendall(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % server.server_port)
            assert s.recv(1024).startswith(b"HTTP/1.0 200")
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in capfd.readouterr().err


def head(port: int, *headers: bytes) -> bytes:
    """The first bytes of the answer to a HEAD / with ``headers`` (default: the right Host)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"HEAD / HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in headers or [b"Host: 127.0.0.1:%d" % port])
                  + b"\r\n")
        return s.recv(1024)


def test_the_server_caps_its_connections_and_threads():
    """Four slots, then 20 more half-open connections: each extra one is answered 503 at once and no thread is
    started for it; a request meanwhile is refused in words, and served as soon as a slot frees."""
    server, lines = serve(b"page", timeout=5, max_connections=4, request_timeout=10)
    threads = threading.active_count()
    held = []
    try:
        t0 = time.monotonic()
        for _ in range(4 + 20):
            held.append(socket.create_connection(("127.0.0.1", server.server_port), timeout=5))
        answers = []
        for s in held[4:]:
            answers.append(s.recv(1024))
        assert all(a.startswith(b"HTTP/1.0 503 Service Unavailable") for a in answers), answers
        assert threading.active_count() <= threads + 4, threading.active_count()
        assert head(server.server_port).startswith(b"HTTP/1.0 503")  # a clear refusal while full
        for s in held:
            s.close()  # the four half-open ones end: their slots free
        deadline = time.monotonic() + 5
        while not head(server.server_port).startswith(b"HTTP/1.0 200"):
            assert time.monotonic() < deadline, "a slot never freed"
            time.sleep(0.05)
        assert time.monotonic() - t0 < 5
        assert len(lines) == 1 and "4 connections open" in lines[0] and "503" in lines[0], lines
    finally:
        for s in held:
            s.close()
        server.shutdown()
        server.server_close()


def test_a_request_trickled_byte_by_byte_is_closed_at_the_total_time_limit():
    """One byte every 0.2 s keeps a 1 s idle timeout at bay; the 1.5 s limit on the whole request does not."""
    server, lines = serve(b"page", timeout=1, request_timeout=1.5)
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as s:
            t0 = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\n")
            closed = None
            while closed is None and time.monotonic() - t0 < 5:
                try:
                    s.sendall(b"X")
                except OSError:
                    closed = time.monotonic() - t0
                    break
                readable, _, _ = select.select([s], [], [], 0.2)
                if readable and s.recv(1024) == b"":
                    closed = time.monotonic() - t0
        assert closed is not None and 1.4 < closed < 2.5, closed
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(lines) == 1 and "did not arrive within 1.5 s" in lines[0], lines
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("hosts", [[b"Host: 127.0.0.1:{port}", b"Host: evil.example:{port}"],
                                   [b"Host: evil.example:{port}", b"Host: 127.0.0.1:{port}"],
                                   [b"Host: 127.0.0.1:{port}", b"Host: 127.0.0.1:{port}"], []])
def test_every_host_header_is_checked(hosts):
    """A second Host, before or after ours, even a copy of ours, is refused; so is none."""
    server, _ = serve(b"page", timeout=5)
    try:
        port = server.server_port
        answer = head(port, *[h.replace(b"{port}", b"%d" % port) for h in hosts] or [b"Accept: */*"])
        assert answer.startswith(b"HTTP/1.0 403"), answer
        assert head(port).startswith(b"HTTP/1.0 200")
    finally:
        server.shutdown()
        server.server_close()


def test_a_tiny_image_folder_is_split_without_stratifying(ws):
    """Two classes of two images: one test image cannot hold both classes, so the split is plain, not an error."""
    from latentatlas.data import load_dataset

    ds = load_dataset(image_folder(ws, {"a": 2, "b": 2}))
    assert (len(ds.x_train), len(ds.x_test)) == (3, 1)


def test_demo_refuses_a_report_page_of_the_users_before_training(ws):
    (ws.tmp / "demo").mkdir()
    (ws.tmp / "demo" / "report.html").write_text("<html>mine</html>")
    before = snapshot(ws.tmp)
    r = CliRunner().invoke(main, ["demo", "--data", "digits", "--epochs", "1", "--out", str(ws.tmp / "demo")])
    assert r.exit_code == 2 and "latentatlas did not write it" in r.output, r.output
    assert snapshot(ws.tmp) == before


BOMB = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # what this process can hold: 3 GiB
from latentatlas.data import load_dataset
from latentatlas.errors import LatentAtlasError
try:
    load_dataset(sys.argv[1])
    print("loaded")
except LatentAtlasError as e:
    print(f"refused: {e}")
# peak resident memory, KiB: VmHWM starts afresh at exec (ru_maxrss would count the forked pytest's)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


@pytest.mark.parametrize("kind", ["gzip IDX", ".npz"])
def test_an_honest_bomb_is_refused_before_memory_is_spent(ws, kind):
    """A few MB whose headers honestly claim 2^21 images (1.6 GB), labels as many, under a 3 GiB address-space
    limit (so at most 1.5 GiB for one request): refused from the headers, peak memory under 200 MB."""
    n = 1 << 21
    if kind == ".npz":
        data = honest_npz(ws, n, labels=True)
    else:
        data = idx_folder(ws, train_images=gzip_stream(idx_header(0x08, (n, 28, 28)), zeros=n * 784),
                          train_labels=gzip_stream(idx_header(0x08, (n,)), zeros=n))
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", BOMB, data], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    verdict, peak = p.stdout.strip().splitlines()
    print(f"{kind} bomb: {verdict[:120]}; peak {int(peak) / 1024:.0f} MiB")
    assert verdict.startswith("refused") and "more than this machine's memory" in verdict, verdict
    assert int(peak) < 200 * 1024, f"peak {int(peak) / 1024:.0f} MiB"
