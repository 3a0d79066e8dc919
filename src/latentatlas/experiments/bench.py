"""Benchmark: latentatlas's trainer against the tutorial's plain PyTorch loop, same data, model and seed.

Speed is reported as a ratio of two runs in the same process (machines are noisy; ratios travel, seconds don't).
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import RunConfig
from ..metrics import encode, knn_accuracy, reconstruction_errors
from ..model import AutoencoderNet
from ..runs import build_trainer, resolve_runtime
from ..train import Callback, quiet


def reference_fit(model: AutoencoderNet, x_train, x_test, epochs: int, batch_size: int, lr: float, seed: int,
                  device: str, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """The plain loop, as the tutorial writes it: float32 copies of the whole set, a shuffled copy every epoch,
    Adam, BCE on the sigmoid output, and after each epoch the loss over the full train and test sets.

    ``on_epoch`` is called with each epoch's record, after its clock has stopped."""
    torch.manual_seed(seed)
    model.to(device).train()
    xtr = torch.tensor(np.asarray(x_train), dtype=torch.float32, device=device) / 255
    xte = torch.tensor(np.asarray(x_test), dtype=torch.float32, device=device) / 255
    forward = lambda x: model.decode(model.encode(x))  # noqa: E731 - the tutorial's Sequential ends in a Sigmoid
    loss_fn = nn.BCELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        shuffled = xtr[torch.randperm(len(xtr), device=device)]  # fancy indexing copies the set
        for batch in torch.split(shuffled, batch_size):
            loss = loss_fn(forward(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            train_loss, test_loss = loss_fn(forward(xtr), xtr).item(), loss_fn(forward(xte), xte).item()
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "test_loss": test_loss,
                        "seconds": time.perf_counter() - t0})
        if on_epoch is not None:
            on_epoch(history[-1])
    return history


def benchmark(preset: str, dataset, epochs: int = 10, batch_size: int = 128, seed: int = 0, device: str = "auto",
              precision: str = "auto", progress: bool | None = None) -> dict:
    """Train ``preset`` both ways; returns the figures of each and the speed-up (reference seconds / ours).

    ``progress``: a bar of both loops' epochs (None: only when writing to a terminal). It ticks once an epoch, so
    it costs neither loop any measurable time."""
    cfg = resolve_runtime(RunConfig(preset=preset, epochs=epochs, batch_size=batch_size, seed=seed, device=device,
                                    precision=precision, data=dataset.name))
    x_train, y_train = dataset.flat("train")
    x_test, y_test = dataset.flat("test")
    results = {}
    bar = tqdm(total=2 * epochs, unit="epoch", desc=f"{preset}: latentatlas", disable=quiet(progress), leave=False,
               dynamic_ncols=True, mininterval=0)  # one tick an epoch: draw every one
    # latentatlas first: the reference's float copies would otherwise linger in the allocator during our run.
    with peak_rss() as rss:
        trainer = build_trainer(cfg, x_train, callbacks=[_Tick(bar)], progress=False)
        t0 = time.perf_counter()
        trainer.fit(x_train, x_test)
        _sync(cfg.device)
        seconds = time.perf_counter() - t0
    results["latentatlas"] = _figures(trainer.model, seconds, rss, x_train, y_train, x_test, y_test, epochs)
    del trainer
    torch.manual_seed(seed)
    model = AutoencoderNet.from_config(cfg, dataset.n_features)
    bar.set_description(f"{preset}: reference")
    with peak_rss() as rss:
        t0 = time.perf_counter()
        reference_fit(model, x_train, x_test, epochs, batch_size, cfg.lr, seed, cfg.device,
                      on_epoch=lambda record: bar.update())
        _sync(cfg.device)
        seconds = time.perf_counter() - t0
    bar.close()
    results["reference"] = _figures(model, seconds, rss, x_train, y_train, x_test, y_test, epochs)
    return {
        "speedup": results["reference"]["seconds"] / results["latentatlas"]["seconds"],
        **results,
        "job": {"preset": preset, "data": dataset.name, "n_train": len(x_train), "epochs": epochs,
                "batch_size": batch_size, "device": cfg.device, "precision": cfg.precision},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if cfg.device.startswith("cuda") else None},
    }


@dataclass
class _Tick(Callback):
    bar: tqdm

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.bar.update()


def _figures(model, seconds, rss, x_train, y_train, x_test, y_test, epochs) -> dict:
    model.eval()
    z_train, z_test = encode(model, x_train), encode(model, x_test)
    return {"seconds": seconds, "samples_per_second": epochs * len(x_train) / seconds,
            "bce_test": reconstruction_errors(model, x_test)["bce_test"],
            "knn5": knn_accuracy(z_train, y_train, z_test, y_test, 5),
            "peak_rss_mb": rss["peak"] / 2**20, "rss_increase_mb": (rss["peak"] - rss["start"]) / 2**20}


@contextmanager
def peak_rss(interval: float = 0.005):
    """Sample this process's resident memory in a thread; yields a dict filled with 'start' and 'peak' bytes."""
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    out = {"start": rss(), "peak": rss()}
    done = threading.Event()

    def sample():
        while not done.is_set():
            out["peak"] = max(out["peak"], rss())
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()
        out["peak"] = max(out["peak"], rss())


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def format_result(r: dict) -> str:
    rows = [("", "reference", "latentatlas")]
    for key, fmt in (("seconds", "{:.2f}"), ("samples_per_second", "{:,.0f}"), ("bce_test", "{:.4f}"),
                     ("knn5", "{:.4f}"), ("peak_rss_mb", "{:,.0f}"), ("rss_increase_mb", "{:,.0f}")):
        rows.append((key, fmt.format(r["reference"][key]), fmt.format(r["latentatlas"][key])))
    job = r["job"]
    head = (f"{job['preset']} on {job['data']} ({job['n_train']:,} images), {job['epochs']} epochs, batch "
            f"{job['batch_size']}, {job['device']}, {job['precision']}: speed-up {r['speedup']:.2f}x")
    return head + "\n" + "\n".join(f"  {a:20s} {b:>12s} {c:>12s}" for a, b, c in rows)
