"""Each preset's training step against this machine's own matrix-product floor, and where the rest of it goes.

    .venv/bin/python benchmarks/roofline.py [--presets deep-2d,deep-s2,thick-s2] [--precision auto] [--json F]

Under the AVX2 restriction, prefix ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``
(``latentatlas.hardware.AVX2_ONLY``; ``auto`` then trains in fp32, as on an AVX2-only CPU).

For each preset at its batch size, in the precision the run would use:
- the floor: every Linear's three products (forward, input gradient, weight gradient) timed alone at the layer's
  shapes, in that precision; their rate (GFLOP/s) is this machine's own at these shapes;
- the step: ``Trainer.fit`` as ``latentatlas train`` builds it (uint8 data, the real loss, fused Adam), median over an
  epoch of steps after a warm-up epoch;
- the floor's share of the step, and a profile of one epoch (torch.profiler, self time per operator) by kind of
  work: products, the optimizer, activations, the loss, data (batch gather and scaling), and what no operator
  accounts for (autograd's engine, Python). The profiler adds its own overhead to each operator, so the kinds are
  shares of the profiled epoch, not of the unprofiled step.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np
import torch
from torch import nn

from latentatlas import hardware
from latentatlas.config import RunConfig
from latentatlas.run_training import build_trainer, resolve_runtime
from step_probe import median_us  # benchmarks/ is on the path when this file is run

# Operator names (self time) by kind of work, the first match winning; anything else is "other operators".
KINDS = {
    "products": r"^aten::(mm|addmm|bmm|matmul|linear|_int_mm)$|^mkldnn",
    "optimizer": r"adam|Optimizer|_foreach",
    "loss": r"binary_cross_entropy|mse_loss|log_sigmoid|softplus|logsumexp|kl",  # before "sigmoid" matches
    "activations": r"prelu|relu|sigmoid|tanh|gelu|silu",
    "data": r"index_select|_to_copy|^aten::to$|copy_|randperm|^aten::mul_$",
}


def products_floor(model: nn.Module, batch: int, dtype: torch.dtype) -> tuple[float, float]:
    """(microseconds, FLOPs) of every Linear's three products at ``batch``, each timed alone in ``dtype``."""
    us = flops = 0.0
    for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
        x = torch.randn(batch, layer.in_features, dtype=dtype)
        g = torch.randn(batch, layer.out_features, dtype=dtype)
        w = layer.weight.detach().to(dtype)
        for fn in (lambda: x @ w.t(), lambda: g @ w, lambda: g.t() @ x):
            us += median_us(fn)
        flops += 3 * 2 * batch * layer.in_features * layer.out_features
    return us, flops


def measure(preset: str, precision: str, steps: int) -> dict:
    cfg = resolve_runtime(RunConfig(preset=preset, precision=precision, epochs=3, device="cpu"))
    x = np.random.default_rng(0).integers(0, 256, (steps * cfg.batch_size, 784), dtype=np.uint8)
    trainer = build_trainer(cfg, x, progress=False)
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    floor_us, flops = products_floor(trainer.model, cfg.batch_size, dtype)
    trainer.epochs = 2
    trainer.fit(x)  # epoch 1 warms up; epoch 2 is timed
    step_us = trainer.history[-1]["seconds"] / steps * 1e6
    trainer.epochs = 3
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        trainer.fit(x, start_epoch=2)
        profiled_us = (time.perf_counter() - t0) * 1e6
    kinds = dict.fromkeys([*KINDS, "other operators"], 0.0)
    for event in prof.key_averages():
        kind = next((k for k, pattern in KINDS.items() if re.search(pattern, event.key, re.I)), "other operators")
        kinds[kind] += event.self_cpu_time_total
    kinds["not in any operator (autograd engine, Python)"] = max(0.0, profiled_us - sum(kinds.values()))
    return {"preset": preset, "batch_size": cfg.batch_size, "precision": cfg.precision,
            "floor_us": floor_us, "floor_gflops": flops / floor_us / 1e3, "step_us": step_us,
            "floor_share": floor_us / step_us, "profile_share": {k: v / profiled_us for k, v in kinds.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="deep-2d,deep-s2,thick-s2")
    p.add_argument("--precision", default="auto")
    p.add_argument("--steps", type=int, default=200, help="steps of the timed epoch")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = [measure(preset, args.precision, args.steps) for preset in args.presets.split(",")]
    print(hardware.header(rows[0]["precision"]))
    print(f"{'preset':10s} {'batch':>5s} {'floor ms':>9s} {'GFLOP/s':>8s} {'step ms':>8s} {'floor share':>11s}  "
          "profile of the step (shares)")
    for r in rows:
        kinds = ", ".join(f"{k} {v:.0%}" for k, v in r["profile_share"].items() if v >= 0.005)
        print(f"{r['preset']:10s} {r['batch_size']:5d} {r['floor_us'] / 1e3:9.2f} {r['floor_gflops']:8.0f} "
              f"{r['step_us'] / 1e3:8.2f} {r['floor_share']:11.0%}  {kinds}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": hardware.describe(rows[0]["precision"]), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
