"""The trainer: it learns, it is deterministic, it resumes exactly, and it stops cleanly on a non-finite loss."""

import pytest
import torch

from latentatlas.config import RunConfig
from latentatlas.model import AutoencoderNet
from latentatlas.losses import build_objective
from latentatlas._tensors import to_unit_float
from latentatlas.train import NonFiniteLossError, Trainer, pick_device, pick_precision


def bce_objective(model):
    return build_objective(RunConfig(preset="deep-2d").resolved(), model.geometry).loss_fn()


def make_trainer(preset="deep-2d", seed=0, epochs=2, **kw):
    torch.manual_seed(seed)
    model = AutoencoderNet.from_config(RunConfig(preset=preset).resolved(), 784)
    return Trainer(model, bce_objective(model), epochs=epochs, seed=seed, progress=False, **kw)


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_training_lowers_the_loss(small):
    t = make_trainer(epochs=3)
    before, _ = t.evaluate(small.flat("test")[0])
    history = t.fit(small.flat("train")[0], small.flat("test")[0])
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["test_loss"] < before - 0.05
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_same_weights(small, precision):
    a, b = make_trainer(precision=precision), make_trainer(precision=precision)
    a.fit(small.flat("train")[0])
    b.fit(small.flat("train")[0])
    for k, v in weights(a).items():
        assert torch.equal(v, weights(b)[k]), k


def test_different_seed_different_weights(small):
    a, b = make_trainer(seed=0), make_trainer(seed=1)
    a.fit(small.flat("train")[0])
    b.fit(small.flat("train")[0])
    assert not torch.equal(weights(a)["decoder.0.weight"], weights(b)["decoder.0.weight"])


def test_resume_at_an_epoch_boundary_is_exact(small):
    x = small.flat("train")[0]
    straight = make_trainer(epochs=3)
    straight.fit(x)
    first = make_trainer(epochs=1)
    first.fit(x)
    resumed = make_trainer(epochs=3)
    resumed.load_state_dict(first.state_dict())
    resumed.fit(x, start_epoch=1)
    for k, v in weights(straight).items():
        assert torch.equal(v, weights(resumed)[k]), k
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]


def test_non_finite_loss_names_epoch_and_batch(small):
    calls = {"n": 0}

    t = make_trainer()
    objective = t.loss_fn

    def poisoned(model, batch):
        calls["n"] += 1
        loss, parts = objective(model, batch)
        return (loss * float("nan") if calls["n"] == 3 else loss), parts

    t.loss_fn = poisoned
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 3"):
        t.fit(small.flat("train")[0])
    assert t.history == []


def test_uint8_and_float_inputs_train_identically(small):
    x8 = small.flat("train")[0][:256]
    xf = to_unit_float(torch.as_tensor(x8)).numpy()
    a, b = make_trainer(epochs=1), make_trainer(epochs=1)
    a.fit(x8)
    b.fit(xf)
    for k, v in weights(a).items():
        assert torch.equal(v, weights(b)[k]), k


def test_precision_resolution(monkeypatch):
    from latentatlas import hardware

    assert pick_precision("fp32", "cpu") == "fp32" and pick_precision("bf16", "cpu") == "bf16"
    for native, expected in ((True, "bf16"), (False, "fp32")):  # "auto" follows the CPU's bf16 instructions
        monkeypatch.setattr(hardware, "native_bf16", lambda native=native: native)
        assert pick_precision("auto", "cpu") == expected


# ---- the GPU path, checked where it can be without a GPU ----------------------------------------------------

def test_gpu_choices_resolve_as_on_a_gpu_machine(monkeypatch):
    import latentatlas.train as train

    from latentatlas.errors import LatentAtlasError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto") == "cuda" and pick_device("cuda:1") == "cuda:1"
    with pytest.raises(LatentAtlasError, match="this machine has 2 CUDA device"):
        pick_device("cuda:2")
    native = {"ampere": True, "turing": False}  # what is_bf16_supported says without emulation
    for gpu, expected in (("ampere", "bf16"), ("turing", "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda including_emulation=True, gpu=gpu: native[gpu] or including_emulation)
        assert pick_precision("auto", "cuda") == expected
    assert train._fast_adam_kwargs(torch.device("cuda")) == {"fused": True}


def test_cuda_asked_for_without_cuda_is_a_clear_error(monkeypatch):
    from latentatlas.errors import LatentAtlasError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    with pytest.raises(LatentAtlasError, match=r"CUDA is not available here: use the CPU \(device='cpu'\)") as e:
        pick_device("cuda")
    assert e.value.cli_message().endswith("use the CPU (--device cpu)")  # the command line names its flag


def test_cpus_without_native_bf16_train_in_fp32(monkeypatch):
    from latentatlas import hardware

    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    assert pick_precision("auto", "cpu") == "fp32"


@pytest.mark.parametrize("flags, native", [
    ("fpu avx512f avx512bw avx512vl avx512dq", False),  # Skylake, Cascade Lake: AVX-512 that only emulates bf16
    ("fpu avx512f avx512_bf16", True),  # Cooper Lake, Zen 4
    ("fpu avx512f amx_bf16 amx_tile", True),  # Sapphire Rapids
    ("fpu sse4_2 avx2", False),
])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    from latentatlas import hardware

    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\n")
    assert hardware.native_bf16(str(tmp_path / "cpuinfo"), environ={}) is native
    assert hardware.native_bf16(str(tmp_path / "missing"), environ={}) is False
    # the AVX2 restriction makes any of these CPUs train as an AVX2 one does: in fp32
    assert hardware.native_bf16(str(tmp_path / "cpuinfo"), environ=hardware.AVX2_ONLY) is False
    assert hardware.native_bf16(str(tmp_path / "cpuinfo"), environ={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}) is False


def test_off_a_terminal_training_talks_in_lines(tmp_path):
    """Output to a file (a batch job, nohup, `make demo > log`): a line per epoch, rate-limited by
    LATENTATLAS_PROGRESS_EVERY (0 here: every epoch), with the epoch, the loss, the time spent and left."""
    import os
    import re
    import subprocess
    import sys

    log = tmp_path / "log"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "latentatlas", "train", "--preset", "deep-2d", "--data", "digits",
                        "--epochs", "3", "--out", str(tmp_path / "run")], stdout=f, stderr=subprocess.STDOUT,
                       env={**os.environ, "LATENTATLAS_PROGRESS_EVERY": "0"}, check=True, timeout=300)
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("training: ")]
    epochs = {re.search(r"epoch (\d+), train_loss \d\.\d{4}", line).group(1) for line in lines if "epoch" in line}
    assert epochs == {"1", "2", "3"}
    assert all(re.search(r", \d+ s, about \d+ s left$", line) for line in lines)
    assert "\r" not in text  # no bar smeared into the file


def test_progress_lines_are_rate_limited(capsys):
    from latentatlas.progress import Lines

    lines = Lines(300, "training", unit="batches", every=3600)
    for epoch in (1, 2, 3):
        for _ in range(100):
            lines.update()
        lines.set_postfix(epoch=epoch)
    said = capsys.readouterr().err.splitlines()  # within the hour: the first epoch's end and the last's, no more
    assert [line.split(", ")[:2] for line in said] == [["training: 100 / 300 batches", "epoch 1"],
                                                        ["training: 300 / 300 batches", "epoch 3"]]
    # A slow first epoch has said how far it is before it ends: its end is still said (a loaded machine's notebook).
    lines = Lines(300, "training", unit="batches", every=3600)
    lines.update(50)
    lines._maybe_line(force=True)  # a line within the first epoch, as time would give on a slow one
    lines.update(50)
    lines.set_postfix(epoch=1)
    said = capsys.readouterr().err.splitlines()
    assert [line.split(", ")[0] for line in said] == ["training: 50 / 300 batches", "training: 100 / 300 batches"]
    assert said[1].split(", ")[1] == "epoch 1"
    lines = Lines(4, "training", unit="batches", every=0)
    lines.update(2)
    lines.set_postfix(epoch=1, train_loss="0.5000")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("training: 2 / 4 batches, ") and err[-1].startswith(
        "training: 2 / 4 batches, epoch 1, train_loss 0.5000, ")
