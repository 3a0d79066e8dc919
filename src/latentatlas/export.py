"""Export a run's encoder and decoder to ONNX (one self-contained file each)."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ._guard import check_out, is_run_folder
from ._io import atomic_write
from .run_folder import write_manifest
from .runs import load_run, locked_run


class _Encode(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):  # (B, n_features) floats in [0, 1] -> (B, latent_dim)
        return self.model.encode_direct(pixels)  # one pass: a free layout's refinement on its map is not a graph


class _Decode(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, latent):  # (B, latent_dim) -> (B, n_features) pixels in [0, 1]
        return self.model.decode(latent)


def export_onnx(run_path: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write ``encoder.onnx`` and ``decoder.onnx`` (batch size dynamic) into ``out`` (default: the run folder, under
    its lock, which then lists them in its manifest)."""
    out = Path(run_path if out is None else out)
    if is_run_folder(out) and Path(run_path).is_dir() and os.path.samefile(out, run_path):
        run, lock = locked_run(run_path)
        with lock:
            written = _export(run, out)
            write_manifest(run.path)
        return written
    for name in ("encoder.onnx", "decoder.onnx"):
        check_out(out / name, name="out")  # before the export's seconds: refused if not ours, or in another run
    return _export(load_run(run_path), out)


def _export(run, out: Path) -> list[Path]:
    model = run.model.float().eval()
    examples = {
        "encoder.onnx": (_Encode(model), torch.rand(2, model.n_features), "pixels", "latent"),
        "decoder.onnx": (_Decode(model), torch.randn(2, model.geometry.dim), "latent", "pixels"),
    }
    written = []
    for name, (module, example, inp, outp) in examples.items():
        # torch.export-based exporter (needs onnxscript); external_data=False keeps the weights inside the file.
        module.eval()
        with _exporter_quiet():
            written.append(atomic_write(out / name, lambda tmp: torch.onnx.export(
                module, (example,), tmp, input_names=[inp], output_names=[outp], dynamo=True, external_data=False,
                dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)))
    return written


@contextlib.contextmanager
def _exporter_quiet():
    """Silence the exporter's notes about PyTorch's own internals (torchvision ops it skips, a deprecation inside
    torch.export): they say nothing about this model, and a user would read them as a problem with it."""
    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                    category=FutureWarning)
            yield
    finally:
        log.setLevel(level)
