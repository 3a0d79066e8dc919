"""Benchmark: latentatlas's trainer against the tutorial's plain PyTorch loop, same data, model and seed.

Speed is reported as a ratio of two runs in the same process (machines are noisy; ratios travel, seconds don't).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import hardware
from ..config import RunConfig
from ..metrics import encode, knn_accuracy, reconstruction_errors
from ..model import AutoencoderNet
from ..run_training import build_trainer, resolve_runtime
from .._tensors import quiet, tqdm
from ..train import Callback


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
        "machine": machine(cfg.device, cfg.precision),
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
    return head + "\n  " + machine_header(r) + "\n" + "\n".join(f"  {a:20s} {b:>12s} {c:>12s}" for a, b, c in rows)


# ---- time to quality ---------------------------------------------------------------------------------------------

BCE_MARGIN = 0.002  # the tutorial loop's seed spread on Fashion-MNIST (issue 15): a recipe within it is as good
KNN_MARGIN = 0.01


def to_quality(preset: str, dataset, recipe: str = "fast", epochs: int = 10, batch_size: int = 128, seed: int = 0,
               device: str = "auto", precision: str = "auto", progress: bool | None = None,
               bce_margin: float = BCE_MARGIN, knn_margin: float = KNN_MARGIN) -> dict:
    """Wall time until test BCE and 5-NN first reach the tutorial loop's own final values, for that loop and for
    latentatlas trained by ``recipe``, side by side in this process.

    The loop trains ``epochs`` epochs of ``batch_size`` as the tutorial does; its final test BCE and 5-NN, loosened by the margins
    (its seed spread), are the target. Both sides are evaluated after every epoch with the clock stopped, so each
    side's time is its training alone (the loop's per-epoch full-set losses included, as the tutorial has them);
    latentatlas stops at the first epoch that meets the target.
    """
    from ..schedules import get_recipe

    cfg = resolve_runtime(RunConfig(preset=preset, seed=seed, device=device, precision=precision, data=dataset.name,
                                    **get_recipe(recipe).settings(preset)))
    tutorial = resolve_runtime(RunConfig(preset=preset, seed=seed, device=device, precision=precision,
                                         data=dataset.name, epochs=epochs, batch_size=batch_size))
    (x_train, y_train), (x_test, y_test) = dataset.flat("train"), dataset.flat("test")
    total = epochs + cfg.epochs
    bar = tqdm(total=total, unit="epoch", desc=f"{preset}: reference", disable=quiet(progress), leave=False,
               dynamic_ncols=True, mininterval=0)

    def scores(model) -> dict:
        z_train, z_test = encode(model, x_train), encode(model, x_test)
        out = {"bce_test": reconstruction_errors(model, x_test)["bce_test"],
               "knn5": knn_accuracy(z_train, y_train, z_test, y_test, 5)}
        model.train()
        return out

    torch.manual_seed(seed)
    model = AutoencoderNet.from_config(tutorial, dataset.n_features)
    reference: list[dict] = []

    def on_reference_epoch(record: dict) -> None:
        reference.append({"epoch": record["epoch"], "seconds": record["seconds"], **scores(model)})
        bar.update()

    reference_fit(model, x_train, x_test, epochs, tutorial.batch_size, tutorial.lr, seed, tutorial.device,
                  on_epoch=on_reference_epoch)
    target = {"bce_test": reference[-1]["bce_test"] + bce_margin, "knn5": reference[-1]["knn5"] - knn_margin}
    bar.set_description(f"{preset}: latentatlas ({recipe})")
    ours = _ToQuality(scores, target, bar)
    trainer = build_trainer(cfg, x_train, callbacks=[ours], progress=False)
    trainer.fit(x_train, x_test)
    bar.close()
    sides = {"reference": _reached(reference, target), "latentatlas": _reached(ours.epochs, target)}
    sides["reference"]["total_seconds"] = sum(r["seconds"] for r in reference)
    reached = sides["latentatlas"]["seconds_to_target"]
    return {
        **sides,
        "target": target,
        "time_share": None if reached is None else reached / sides["reference"]["total_seconds"],
        "job": {"preset": preset, "data": dataset.name, "n_train": len(x_train), "reference_epochs": epochs,
                "recipe": recipe, "recipe_settings": get_recipe(recipe).settings(preset), "device": cfg.device,
                "precision": cfg.precision, "bce_margin": bce_margin, "knn_margin": knn_margin},
        "machine": machine(cfg.device, cfg.precision),
    }


class _ToQuality(Callback):
    """Scores the model after each epoch (the trainer's clock has stopped) and stops at the first on target."""

    def __init__(self, scores, target: dict, bar):
        self.scores, self.target, self.bar, self.epochs = scores, target, bar, []

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.epochs.append({"epoch": record["epoch"], "seconds": record["seconds"], **self.scores(trainer.model)})
        self.bar.update()
        if _on_target(self.epochs[-1], self.target):
            trainer.stop_training = True


def _on_target(record: dict, target: dict) -> bool:
    return record["bce_test"] <= target["bce_test"] and record["knn5"] >= target["knn5"]


def _reached(epochs: list[dict], target: dict) -> dict:
    """The first epoch on target and the training seconds up to its end (None: never), and every epoch's scores."""
    elapsed = 0.0
    for r in epochs:
        elapsed += r["seconds"]
        if _on_target(r, target):
            return {"epochs_to_target": r["epoch"], "seconds_to_target": elapsed, "at_target": r, "epochs": epochs}
    return {"epochs_to_target": None, "seconds_to_target": None, "at_target": epochs[-1], "epochs": epochs}


def machine(device: str, precision: str) -> dict:
    """What the figures were measured on: the CPU, the instructions it may use here, threads, precision, load."""
    return {**hardware.describe(precision),
            "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None}


def machine_header(r: dict) -> str:
    """The printed line naming a result's machine, as every benchmark names its own."""
    return "measured on " + hardware.format_machine(r["machine"])


def format_to_quality(r: dict) -> str:
    job, t = r["job"], r["target"]
    lines = [f"{job['preset']} on {job['data']} ({job['n_train']:,} images), {job['device']}, {job['precision']}: "
             f"target test BCE <= {t['bce_test']:.4f}, 5-NN >= {t['knn5']:.4f} (the loop's final values "
             f"+{job['bce_margin']} / -{job['knn_margin']})", "  " + machine_header(r)]
    for side, name in (("reference", f"tutorial loop, {job['reference_epochs']} epochs"),
                       ("latentatlas", f"latentatlas --recipe {job['recipe']}")):
        s = r[side]
        at = s["at_target"]
        when = ("not reached" if s["seconds_to_target"] is None else
                f"reached at epoch {s['epochs_to_target']} in {s['seconds_to_target']:.2f} s")
        lines.append(f"  {name:34s} {when:34s} BCE {at['bce_test']:.4f}  5-NN {at['knn5']:.4f}")
    lines.append(f"  the loop's whole run: {r['reference']['total_seconds']:.2f} s; latentatlas to target: "
                 + ("never" if r["time_share"] is None else f"{r['time_share']:.2f} of it"))
    return "\n".join(lines)
