"""A lower bound on the time of the benchmark's job, from its unavoidable parts alone, against the reference loop.

    python benchmarks/floor.py                      # deep-2d, 10 epochs of 60,000 images, batch 128
    python benchmarks/floor.py --preset thick-s2 --epochs 5

The bound counts only what any training step with fp32 master weights must do, each part timed alone at its best:
every Linear's three matrix products (forward, gradient of the input, gradient of the weight) at the batch size,
each in bf16 or fp32, whichever is faster, and one step of PyTorch's fused Adam kernel over all the parameters
(called directly, without the optimiser's Python around it); plus the forward products of the per-epoch test loss.
It leaves out everything else a step does (activations, loss, bias gradients, casts, autograd, data), so any real
implementation is slower than the bound. The reference loop then runs the whole job in the same process, and the
best speed-up any implementation could reach here is its time over the bound.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from latentatlas import hardware
from latentatlas.experiments.bench import reference_fit
from latentatlas.config import RunConfig
from latentatlas.model import AutoencoderNet
from step_probe import adam_us, median_us  # benchmarks/ is on the path when this file is run


def products_us(layer: nn.Linear, batch: int) -> dict[str, float]:
    """Median time of each of the layer's three products, in whichever of bf16 and fp32 is faster."""
    best = {}
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(batch, layer.in_features, dtype=dtype)
        g = torch.randn(batch, layer.out_features, dtype=dtype)
        w = layer.weight.detach().to(dtype)
        for name, fn in {"forward": lambda: x @ w.t(), "grad input": lambda: g @ w,
                         "grad weight": lambda: g.t() @ x}.items():
            best[name] = min(best.get(name, math.inf), median_us(fn, n=200))
    return best


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="deep-2d")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=60_000)
    ap.add_argument("--n-test", type=int, default=10_000)
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = RunConfig(preset=args.preset).resolved()
    model = AutoencoderNet.from_config(cfg, 784)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    steps = math.ceil(args.n_train / args.batch_size) * args.epochs

    print(f"{args.preset}, batch {args.batch_size}, {torch.get_num_threads()} threads; "
          "products (bf16 or fp32, the faster), median us:")
    step_us = 0.0
    for layer in linears:
        t = products_us(layer, args.batch_size)
        step_us += sum(t.values())
        timings = ", ".join(f"{k} {v:6.0f}" for k, v in t.items())
        print(f"  {layer.in_features:5d} -> {layer.out_features:<5d} {timings}")
    _, adam = adam_us(model, n=200)  # the fused kernel called directly
    eval_us = sum(products_us(layer, 4096)["forward"] for layer in linears) * math.ceil(args.n_test / 4096)
    floor = (steps * (step_us + adam) + args.epochs * eval_us) / 1e6
    print(f"  products {step_us:.0f} us + fused Adam {adam:.0f} us a step, x {steps} steps; "
          f"test-loss products {eval_us / 1e3:.1f} ms an epoch")

    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (args.n_train, 784), dtype=np.uint8)
    x_test = rng.integers(0, 256, (args.n_test, 784), dtype=np.uint8)
    t0 = time.perf_counter()
    reference_fit(AutoencoderNet.from_config(cfg, 784), x_train, x_test, args.epochs, args.batch_size, cfg.lr, 0,
                  "cpu")
    reference = time.perf_counter() - t0
    print(f"lower bound of the {args.epochs}-epoch job: {floor:.1f} s; reference loop: {reference:.1f} s; "
          f"best speed-up possible: {reference / floor:.2f}x")


if __name__ == "__main__":
    main()
