"""Does a compiled training step pay across the runs of a comparison? Eager against torch.compile, interleaved.

    PYTHONPATH=src python benchmarks/compile_probe.py --runs 3 --steps 200

Each run builds a fresh deep-2d trainer (as each seed of ``compare`` does) and trains ``--steps`` steps on
Fashion-MNIST images, once eager and once with the loss compiled (``torch.compile``, default mode; inductor's
FX-graph cache is persistent on disk, so a compile in a later process may be warm). Prints the compile time of each
compiled run (its first step's extra time), the median ms per step of both, and the break-even number of steps:
how many steps a process must train before its compile pays for itself.
"""

import argparse
import statistics
import time

import torch

from latentatlas import hardware
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.run_training import build_trainer, resolve_runtime
from latentatlas.train import Callback


class Clock(Callback):
    def __init__(self):
        self.times = [time.perf_counter()]

    def on_step_end(self, trainer, step):
        self.times.append(time.perf_counter())


def run(cfg, x, compiled: bool) -> tuple[float, float]:
    """(first step's seconds, median seconds of the later steps)."""
    clock = Clock()
    trainer = build_trainer(cfg, x, callbacks=[clock], progress=False)
    if compiled:
        trainer.loss_fn = torch.compile(trainer.loss_fn)
    clock.times = [time.perf_counter()]
    trainer.fit(x)
    steps = [b - a for a, b in zip(clock.times, clock.times[1:])]
    return steps[0], statistics.median(steps[1:])


def main():
    print(hardware.header(), flush=True)  # what these figures were measured on
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--precision", default="auto")
    a = ap.parse_args()
    x = load_dataset("fashion-mnist").flat("train")[0][: a.steps * 128]
    cfg = resolve_runtime(RunConfig(preset="deep-2d", epochs=1, precision=a.precision, data="fashion-mnist"))
    eager, compiled, compile_s = [], [], []
    for r in range(a.runs):
        first_e, step_e = run(cfg, x, False)
        first_c, step_c = run(cfg, x, True)
        eager.append(step_e), compiled.append(step_c), compile_s.append(first_c - step_c)
        print(f"run {r}: eager {step_e * 1e3:.2f} ms/step, compiled {step_c * 1e3:.2f} ms/step, "
              f"compile {first_c - step_c:.2f} s", flush=True)
    saved = statistics.median(eager) - statistics.median(compiled)
    # A process pays the first compile; its later models of the same shapes reuse the compiled graph.
    print(f"{cfg.precision}: median eager {statistics.median(eager) * 1e3:.2f}, compiled "
          f"{statistics.median(compiled) * 1e3:.2f} ms/step; compile {compile_s[0]:.1f} s in the first run, "
          f"{', '.join(f'{c:.1f}' for c in compile_s[1:])} s in the later ones; "
          + (f"a process breaks even after {compile_s[0] / saved:,.0f} steps "
             f"({compile_s[0] / saved / 469:.1f} Fashion-MNIST epochs)" if saved > 0 else "compiled is not faster"))


if __name__ == "__main__":
    main()
