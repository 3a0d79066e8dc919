"""Kill a real training process with SIGKILL at random moments, resume, and get the uninterrupted run's weights."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from latentatlas.weights import load_weights

EPOCHS = 10
ARGS = ["train", "--preset", "deep-2d", "--data", "mnist-5k", "--epochs", str(EPOCHS), "--seed", "3"]


def start(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "latentatlas", *ARGS, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def epochs_saved(out) -> int:
    try:
        return len(json.loads((out / "checkpoint.json").read_text())["history"])
    except (OSError, ValueError):
        return 0


def kill_after_epoch(proc, out, epoch: int, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after the checkpoint of ``epoch`` appears; False if it ended first."""
    deadline = time.time() + 120
    while epochs_saved(out) < epoch and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.same_kernels
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_killed_and_resumed_run_equals_the_uninterrupted_one(tmp_path):
    finish(start(tmp_path / "straight"))
    rng = random.Random(1234)
    out = tmp_path / "killed"
    # One kill during start-up, then kills at random points inside later epochs (mid-batch, mid-checkpoint write).
    proc = start(out, "--resume")
    time.sleep(rng.uniform(0.5, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = []
    for epoch in sorted(rng.sample(range(1, EPOCHS - 1), 3)):
        if epochs_saved(out) >= epoch:
            continue
        proc = start(out, "--resume")
        if kill_after_epoch(proc, out, epoch, delay=rng.uniform(0.0, 0.15)):
            resumed_from.append(epochs_saved(out))
    last_saved = epochs_saved(out)
    output = finish(start(out, "--resume"))
    assert f"resumed from epoch {last_saved}" in output  # it continued; it did not quietly start again
    assert len(resumed_from) >= 2 and all(0 < e < EPOCHS for e in resumed_from), resumed_from
    a, b = load_weights(tmp_path / "straight" / "model.safetensors"), load_weights(out / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for name in ("model.safetensors", "config.json"):  # the same bytes, so the manifests agree too
        assert (tmp_path / "straight" / name).read_bytes() == (out / name).read_bytes(), name
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == list(range(1, EPOCHS + 1))
    assert not list(out.glob(".*.tmp"))


def test_resume_with_more_epochs_records_them(tmp_path):
    from click.testing import CliRunner

    from latentatlas.cli import main

    args = ["train", "--preset", "shallow-2d", "--data", "digits", "--out", str(tmp_path / "r")]
    assert CliRunner().invoke(main, [*args, "--epochs", "1"]).exit_code == 0
    r = CliRunner().invoke(main, [*args, "--epochs", "2", "--resume"])
    assert r.exit_code == 0 and "resumed from epoch 1" in r.output, r.output
    assert json.loads((tmp_path / "r" / "config.json").read_text())["epochs"] == 2  # what the weights are
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["epochs"] == 2


def test_resume_names_the_settings_that_differ_and_a_finished_run_says_so(tmp_path):
    from click.testing import CliRunner

    from latentatlas.cli import main

    from latentatlas.presets import PRESETS

    args = ["train", "--preset", "deep-2d", "--data", "digits", "--out", str(tmp_path / "r"), "--epochs", "1"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0 and "device cpu, precision" in first.output and "evaluating on 360" in first.output
    assert "drawing the figures into" in first.output
    assert f"n_params         {PRESETS['deep-2d'].n_params(64):,}\n" in first.output  # 58,501: as everywhere
    manifest = (tmp_path / "r" / "manifest.json").read_bytes()
    r = CliRunner().invoke(main, [*args, "--resume"])
    assert r.exit_code == 0 and "had already finished its 1 epoch: nothing to resume" in r.output, r.output
    assert "training" not in r.output and (tmp_path / "r" / "manifest.json").read_bytes() == manifest
    r = CliRunner().invoke(main, [*args, "--resume", "--lr", "0.01", "--batch-size", "64"])
    assert r.exit_code == 2
    assert "--batch-size 128 there, 64 now; --lr 0.001 there, 0.01 now (only --epochs may change)" in r.output


@pytest.mark.same_kernels
@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_ctrl_c_says_what_is_saved_releases_the_lock_and_prints_the_command_that_resumes(tmp_path):
    import shlex

    from latentatlas._lock import check_free

    args = ["train", "--preset", "deep-2d", "--data", "digits", "--epochs", "12", "--seed", "3"]
    cmd = [sys.executable, "-m", "latentatlas"]
    straight = subprocess.run([*cmd, *args, "--out", str(tmp_path / "straight")], capture_output=True, timeout=300)
    assert straight.returncode == 0, straight.stderr.decode()
    out = tmp_path / "cut"
    proc = subprocess.Popen([*cmd, *args, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while epochs_saved(out) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    line = err.decode().strip().splitlines()[-1]
    saved = epochs_saved(out)
    assert 2 <= saved < 12
    prefix = f"interrupted: epoch {saved} is saved in {out}; continue with: "
    assert line.startswith(prefix), line
    assert "Aborted" not in err.decode() and "Traceback" not in err.decode()
    check_free(out)  # the lock is released: no "being written by another process"
    command = shlex.split(line[len(prefix):])
    assert command[0] == "latentatlas" and "--resume" in command
    resumed = subprocess.run([*cmd, *command[1:]], capture_output=True, timeout=300)
    assert resumed.returncode == 0 and f"resumed from epoch {saved}" in resumed.stdout.decode(), resumed.stderr.decode()
    a, b = load_weights(tmp_path / "straight" / "model.safetensors"), load_weights(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
