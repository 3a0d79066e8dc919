"""Threads or processes? Median training step of one deep-2d model (batch 128, fused Adam) at a number of threads.

    python benchmarks/threads_probe.py --threads 2 --seconds 20
    python benchmarks/threads_probe.py --threads 1 --seconds 20 & python benchmarks/threads_probe.py --threads 1 --seconds 20

Run one process on all cores, then as many processes side by side on one thread each: if the sum of their steps per
second beats the single process's, runs train faster side by side (``compare --workers``) than one after another.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from latentatlas import hardware
from latentatlas.config import RunConfig
from latentatlas.model import AutoencoderNet


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoencoderNet.from_config(RunConfig(preset="deep-2d").resolved(), 784)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.rand(128, 784)
    times = []
    end = time.perf_counter() + a.seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            out = model(x)
        loss = F.binary_cross_entropy_with_logits(out.logits.float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    print(f"{a.threads} thread(s), {a.precision}: median {statistics.median(times[20:]) * 1e3:.2f} ms a step over "
          f"{len(times)} steps", flush=True)


if __name__ == "__main__":
    main()
