"""Where one training step of deep-2d (batch 128) spends its time: median ms/step for precision variants.

    python benchmarks/step_probe.py

Variants: fp32; bf16 autocast (what `--precision auto` does on this CPU); bf16 matrix products with the
elementwise ops kept in fp32, either in every Linear or only in the two 784 x 392 layers (92% of the FLOPs).
Then the optimiser alone: torch.optim.Adam(fused=True).step() against a direct call of the fused kernel.
A probe for speed work, not a test: numbers vary with the machine's load, so compare within one run.
"""

from __future__ import annotations

import functools
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from latentatlas import hardware
from latentatlas.config import RunConfig
from latentatlas.model import AutoencoderNet


@functools.cache
def data() -> torch.Tensor:
    return torch.randint(0, 256, (60_000, 784), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


class Bf16MatmulLinear(nn.Module):
    """A Linear whose product runs in bf16 while its input, output and bias stay fp32."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x):
        bf = torch.bfloat16
        return torch.addmm(self.bias.to(bf), x.to(bf), self.weight.to(bf).t()).float()


def model(bf16_layers: str = "none") -> nn.Module:
    torch.manual_seed(0)
    m = AutoencoderNet.from_config(RunConfig(preset="deep-2d").resolved(), 784)
    for seq in (m.encoder, m.decoder):
        for i, layer in enumerate(seq):
            big = isinstance(layer, nn.Linear) and layer.weight.numel() > 100_000
            if isinstance(layer, nn.Linear) and (bf16_layers == "all" or (bf16_layers == "big" and big)):
                seq[i] = Bf16MatmulLinear(layer)
    return m


def ms_per_step(m: nn.Module, autocast: bool, steps: int = 250) -> float:
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=True)
    gen, x = torch.Generator().manual_seed(1), data()

    def step():
        xb = x.index_select(0, torch.randint(0, len(x), (128,), generator=gen)).float().mul_(1 / 255)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.binary_cross_entropy_with_logits(m(xb).logits.float(), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return median_us(step, n=steps, warmup=50) / 1e3


def median_us(fn, n: int = 500, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def direct_fused_adam(params: list[torch.Tensor]):
    """A function doing one Adam step on ``params`` (their .grad set) with the fused kernel alone, and the optimizer
    whose state it uses."""
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    opt.step()
    state = [opt.state[p] for p in params]
    grads, steps = [p.grad for p in params], [s["step"] for s in state]
    exp_avg, exp_avg_sq = [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state]

    def step():
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avg, exp_avg_sq, [], steps, amsgrad=False, lr=1e-3, beta1=0.9,
                           beta2=0.999, weight_decay=0.0, eps=1e-8, maximize=False)

    return step, opt


def adam_us(m: nn.Module, n: int = 500) -> tuple[float, float]:
    """Median us of one Adam step over ``m``'s parameters: through optimizer.step(), and the fused kernel alone."""
    params = list(m.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    direct, opt = direct_fused_adam(params)
    return median_us(opt.step, n=n), median_us(direct, n=n)


if __name__ == "__main__":
    print(hardware.header(), flush=True)  # what these figures were measured on
    variants = {"fp32": (lambda: model(), False), "bf16 autocast": (lambda: model(), True),
                "bf16 products, every Linear": (lambda: model("all"), False),
                "bf16 products, the two big Linears": (lambda: model("big"), False)}
    for name, (make, autocast) in variants.items():
        runs = [ms_per_step(make(), autocast) for _ in range(3)]
        print(f"{name:36s} ms/step, 3 runs: {', '.join(f'{r:.2f}' for r in runs)}")
    for _ in range(3):
        step, direct = adam_us(model())
        print(f"Adam step: optimizer.step() {step:.0f} us, the fused kernel called directly {direct:.0f} us")
