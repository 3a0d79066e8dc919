"""Stacked seeds against separate runs: ms per model-step of the real trainers, interleaved, repeated.

    PYTHONPATH=src python benchmarks/stack_probe.py --preset deep-2d --members 4 --precision auto --repeats 3

Each repeat trains M models one after another (ordinary trainers) and the same M stacked (one trainer), on the
first ``--images`` Fashion-MNIST training images for one epoch, and prints both times per model-step and their
ratio; the medians close the output. The two contenders alternate, so a change in the machine's load hits both.
"""

import argparse
import statistics
import time

import torch

from latentatlas import hardware
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.run_training import build_trainer, resolve_runtime
from latentatlas.stack import stack_trainers


def main():
    print(hardware.header(), flush=True)  # what these figures were measured on
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="deep-2d")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", type=int, default=12_800)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    x = load_dataset("fashion-mnist").flat("train")[0][: a.images]
    cfgs = [resolve_runtime(RunConfig(preset=a.preset, epochs=1, seed=s, precision=a.precision, device=a.device,
                                      data="fashion-mnist")) for s in range(a.members)]
    steps = -(-len(x) // cfgs[0].batch_size)

    def separate():
        for cfg in cfgs:
            build_trainer(cfg, x, progress=False).fit(x)

    def stacked():
        stack_trainers([build_trainer(cfg, x, progress=False) for cfg in cfgs], progress=False).fit(x)

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        if cfgs[0].device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / (steps * a.members) * 1000

    timed(stacked), timed(separate)  # warm-up: first calls, allocator
    ratios, seps, stks = [], [], []
    for r in range(a.repeats):
        sep, stk = timed(separate), timed(stacked)
        seps.append(sep), stks.append(stk), ratios.append(sep / stk)
        print(f"repeat {r}: separate {sep:.2f} ms/model-step, stacked {stk:.2f}, separate/stacked {sep / stk:.2f}",
              flush=True)
    print(f"{a.preset}, {a.members} members, {cfgs[0].precision}, {cfgs[0].device}, threads {torch.get_num_threads()}:"
          f" median separate {statistics.median(seps):.2f}, stacked {statistics.median(stks):.2f} ms/model-step,"
          f" ratio {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
