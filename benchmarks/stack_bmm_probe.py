"""Would stacking pay if written by hand? One deep-2d model's training step against 4 stacked by batched products.

    python benchmarks/stack_bmm_probe.py --threads 2

The stacked network is the tutorial's 784-392-64-2 MLP (and its mirror) with every Linear a ``torch.baddbmm`` over
(M, in, out) weights and every PReLU its own per member, trained by one fused Adam: no ``vmap``, nothing strided.
Each side trains 300 steps of batch 128 on random pixels (the data do not change a step's cost); prints the median
step (after 50 warm-up steps) of one model, of the stack, and their ratio per model-step (above 1 favours stacking),
in bf16 autocast and fp32, 3 repeats.
"""

from latentatlas import hardware
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

ENCODER, DECODER = (784, 392, 64, 2), (2, 64, 392, 784)


def mlp(widths, linear, prelu) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(linear(a, b))
        if widths is ENCODER or i < len(widths) - 2:  # the tutorial's PReLU after every layer but the decoder's last
            layers.append(prelu())
    return nn.Sequential(*layers)


class StackedLinear(nn.Module):
    def __init__(self, members: int, a: int, b: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(members, a, b) / a**0.5)
        self.bias = nn.Parameter(torch.zeros(members, 1, b))

    def forward(self, x):  # (M, B, a) -> (M, B, b)
        return torch.baddbmm(self.bias, x, self.weight)


class StackedPReLU(nn.Module):
    def __init__(self, members: int):
        super().__init__()
        self.slope = nn.Parameter(torch.full((members, 1, 1), 0.25))

    def forward(self, x):
        return torch.where(x >= 0, x, self.slope * x)


def model(members: int | None) -> nn.Module:
    if members is None:
        return nn.Sequential(mlp(ENCODER, nn.Linear, nn.PReLU), mlp(DECODER, nn.Linear, nn.PReLU))
    return nn.Sequential(mlp(ENCODER, lambda a, b: StackedLinear(members, a, b), lambda: StackedPReLU(members)),
                         mlp(DECODER, lambda a, b: StackedLinear(members, a, b), lambda: StackedPReLU(members)))


def median_step(net: nn.Module, shape, bf16: bool, steps: int = 300) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    x = torch.rand(*shape)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        # each member's own mean: the sum's gradient is each member's own
        loss = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none").mean(dim=(-2, -1)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[50:]) * 1e3


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m, b = a.members, a.batch_size
    for rep in range(3):
        for bf16 in (True, False):
            one = median_step(model(None), (b, 784), bf16)
            stacked = median_step(model(m), (m, b, 784), bf16)
            print(f"repeat {rep} {'bf16' if bf16 else 'fp32'} {a.threads} thread(s): one model {one:.2f} ms a step, "
                  f"{m} stacked {stacked / m:.2f} ms a model-step, one / stacked {one / (stacked / m):.2f}", flush=True)


if __name__ == "__main__":
    main()
