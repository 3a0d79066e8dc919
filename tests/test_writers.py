"""Every writer goes through the output guard (issue 26): each command, and each public save/write function, is
run in a workspace, and every file it creates or changes must have been put in place by ``_io._replace``, the
one rename behind ``_io.atomic_write`` (which asks ``_guard.check_out`` first), or lie in a folder so put in place.

A command or public writer added without an entry here fails ``test_every_writer_is_walked``; one that writes
a file some other way fails ``test_writes_go_through_the_guard``.
"""

import hashlib
import inspect
import os
import pkgutil
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import latentatlas
from latentatlas import _io
from latentatlas._lock import LOCK, FolderLock
from latentatlas.cli import main

# Not through the guard, by design: the lock files (their holder's name, written in place while held), and the
# sweep's Optuna study, a database Optuna's own SQLite writes (and locks) transactionally.
NOT_GUARDED = {LOCK, ".study.lock", "study.db"}


def train(tiny, *more):
    return ["train", "--preset", "shallow-2d", "--data", str(tiny), "--epochs", "1", "--device", "cpu", *more]


def sweep_spec(ws):
    pytest.importorskip("optuna", reason="the sweep extra is not installed")
    (ws / "spec.toml").write_text(f'[search]\nseed = [0, 1]\n[fixed]\ndata = "{ws / "tiny.npz"}"\nepochs = 1\n'
                                  'preset = "shallow-2d"\n')
    return ["sweep", str(ws / "spec.toml"), "--out", str(ws / "sweep")]


def onnx_args(ws):
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    return ["export", str(ws / "run"), "--onnx"]


# command -> the arguments of a run of it in the workspace ``ws`` (a finished run ``run/``, ``tiny.npz``)
COMMANDS = {
    "train": lambda ws: train(ws / "tiny.npz", "--out", str(ws / "new")),
    "evaluate": lambda ws: ["evaluate", str(ws / "run")],
    "plot": lambda ws: ["plot", str(ws / "run")],
    "export": onnx_args,
    "report": lambda ws: ["report", str(ws / "run"), "--out", str(ws / "report.html")],
    "explore": lambda ws: ["explore", str(ws / "run"), "--out", str(ws / "explorer.html")],
    "probe": lambda ws: ["probe", str(ws / "run"), "--noise", "0:0.2:2", "--occlude", "", "--rotate", "",
                         "--out", str(ws / "probe.png")],
    "presets": lambda ws: ["presets"],
    "datasets": lambda ws: ["datasets"],
    "demo": None,  # trains the tutorial's four deep networks for minutes: its writes are train's and report's
    "bench": lambda ws: ["bench", "--preset", "shallow-2d", "--data", str(ws / "tiny.npz"), "--epochs", "1",
                         "--device", "cpu", "--json", str(ws / "bench.json")],
    "compare": lambda ws: ["compare", str(ws / "run"), "--baselines", "", "--out", str(ws / "cmp")],
    "sweep": sweep_spec,
}


def _x(ws):
    with np.load(ws / "tiny.npz") as f:
        return f["x_train"].reshape(240, -1)


def _fitted(ws):
    from latentatlas import Autoencoder

    return Autoencoder(preset="shallow-2d", epochs=1, device="cpu", random_state=0).fit(_x(ws))


def _in_run(ws, write):
    from latentatlas.runs import load_run

    with FolderLock(ws / "run"):
        write(load_run(ws / "run"))


# public writer -> a call of it in the workspace
PYTHON = {
    "Autoencoder.save": lambda ws: _fitted(ws).save(ws / "saved"),
    "ExplorerView.save": lambda ws: _fitted(ws).explore(_x(ws)).save(ws / "page.html"),
    "write_explorer": lambda ws: __import__("latentatlas.runs").runs.write_explorer(ws / "run", ws / "e.html"),
    "write_report": lambda ws: __import__("latentatlas.viz.report").viz.report.write_report([ws / "run"], ws / "r.html"),
    "write_outputs": lambda ws: __import__("latentatlas.experiments.compare_outputs").experiments.compare_outputs
    .write_outputs({"m": {k: [0.5] for k in __import__("latentatlas.experiments.compare_outputs").experiments
                          .compare_outputs.compared_keys()}}, ws / "o"),
    "write_manifest": lambda ws: _in_run(ws, lambda run: __import__("latentatlas.run_folder").run_folder
                                         .write_manifest(run.path)),
    "write_model": lambda ws: _in_run(ws, lambda run: __import__("latentatlas.run_folder").run_folder
                                      .write_model(run.path, run.config, run.model, run.history)),
    "write_evaluation": lambda ws: _in_run(ws, lambda run: __import__("latentatlas.runs").runs
                                           .write_evaluation(run, run.dataset(), None)),
    "save_checkpoint": lambda ws: _in_run(ws, lambda run: __import__("latentatlas.run_folder").run_folder
                                          .save_checkpoint(run.path, {"model": run.model.state_dict(),
                                                                      "optimizer": {"state": {}, "param_groups": []},
                                                                      "history": []})),
    "save_weights": lambda ws: __import__("latentatlas.weights").weights.save_weights(
        ws / "w.safetensors", {"a": __import__("torch").zeros(2)}),
    "save_png": lambda ws: __import__("latentatlas.viz.plots").viz.plots.save_png(
        __import__("matplotlib.pyplot").pyplot.figure(), ws / "f.png"),
    "export_onnx": lambda ws: onnx_args(ws) and __import__("latentatlas.export").export.export_onnx(ws / "run",
                                                                                                   ws / "onnx"),
}


def public_writers() -> set[str]:
    """Every public function or method of the package named save*, write* or export*."""
    found = set()
    for info in pkgutil.walk_packages(latentatlas.__path__, "latentatlas."):
        if ".cli" in info.name or info.name.endswith("__main__"):
            continue  # the commands are walked by COMMANDS
        module = __import__(info.name, fromlist=["_"])
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != info.name or name.startswith("_"):
                continue
            members = [(f"{name}.{m}", f) for m, f in vars(obj).items()] if inspect.isclass(obj) else [(name, obj)]
            found |= {label for label, f in members if inspect.isfunction(f) and
                      label.rsplit(".", 1)[-1].startswith(("save", "write", "export"))}
    return found


def test_every_writer_is_walked():
    assert set(COMMANDS) == set(main.commands)
    assert set(PYTHON) == public_writers()


def state(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.fixture
def ws(tmp_path, base_run, tiny, monkeypatch):
    shutil.copy(tiny, tmp_path / "tiny.npz")
    shutil.copytree(base_run, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATENTATLAS_DATA", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("writer", [*COMMANDS, *PYTHON])
def test_writes_go_through_the_guard(ws, writer, monkeypatch):
    placed = []
    replace = _io._replace
    monkeypatch.setattr(_io, "_replace", lambda src, dst: placed.append(Path(os.path.abspath(dst))) or replace(src, dst))
    if COMMANDS.get(writer, 0) is None:
        pytest.skip("demo: see its entry")
    args = COMMANDS[writer](ws) if writer in COMMANDS else None
    before = state(ws)
    if writer in COMMANDS:
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
    else:
        PYTHON[writer](ws)
    after = state(ws)
    changed = [name for name, v in after.items() if before.get(name) != v and Path(name).name not in NOT_GUARDED]
    assert changed or writer in ("presets", "datasets"), "the walk wrote nothing: it tests nothing"
    unguarded = [name for name in changed
                 if not any((ws / name) == p or p in (ws / name).parents for p in placed)]
    assert not unguarded, f"{writer} wrote without the output guard: {unguarded}"
