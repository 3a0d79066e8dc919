"""Train on 1,000,000 28 x 28 images from a memory-mapped uint8 .npy, and compare with the same array in memory.

    .venv/bin/python benchmarks/memmap_1m.py [FOLDER]     (writes about 785 MB to FOLDER, default /tmp/latentatlas-1m)

The images are Fashion-MNIST's 60,000 training images, each shifted by a random offset, written chunk by chunk
(the whole array is never in memory). One epoch of deep-2d is trained on the memory-mapped file, then on the
same array loaded into memory; the script prints throughput and the resident-memory increase of each.
"""

import sys
import time
from pathlib import Path

import numpy as np

from latentatlas import hardware
from latentatlas.experiments.bench import peak_rss
from latentatlas.config import RunConfig
from latentatlas.data import load_dataset
from latentatlas.run_training import build_trainer, resolve_runtime

N = 1_000_000


def make_folder(folder: Path) -> None:
    if (folder / "x_train.npy").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    fm = load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(folder / "x_train.npy.tmp", mode="w+", dtype=np.uint8, shape=(N, 28, 28))
    y = np.empty(N, np.int64)
    for start in range(0, N, len(fm.x_train)):
        n = min(len(fm.x_train), N - start)
        dy, dx = rng.integers(-2, 3, 2)
        x[start : start + n] = np.roll(fm.x_train[:n], (dy, dx), axis=(1, 2))
        y[start : start + n] = fm.y_train[:n]
    x.flush()
    del x
    np.save(folder / "y_train.npy", y)
    np.save(folder / "x_test.npy", fm.x_test)
    np.save(folder / "y_test.npy", fm.y_test)
    (folder / "x_train.npy.tmp").rename(folder / "x_train.npy")


def one_epoch(x, label: str) -> dict:
    cfg = resolve_runtime(RunConfig(preset="deep-2d", epochs=1, data="1m"))
    flat = x.reshape(len(x), -1)
    trainer = build_trainer(cfg, flat, progress=False)
    with peak_rss() as rss:
        t0 = time.perf_counter()
        trainer.fit(flat)
        seconds = time.perf_counter() - t0
    row = {"mode": label, "seconds": seconds, "samples_per_second": len(x) / seconds,
           "rss_increase_mb": (rss["peak"] - rss["start"]) / 2**20, "peak_rss_mb": rss["peak"] / 2**20,
           "train_loss": trainer.history[-1]["train_loss"]}
    print(f"{label:14s} {seconds:7.1f} s  {row['samples_per_second']:9,.0f} samples/s  "
          f"RSS +{row['rss_increase_mb']:6,.0f} MB (peak {row['peak_rss_mb']:,.0f} MB)  loss {row['train_loss']:.4f}")
    return row


if __name__ == "__main__":
    print(hardware.header(), flush=True)  # what these figures were measured on
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/latentatlas-1m")
    make_folder(folder)
    mapped = load_dataset(str(folder)).x_train
    assert isinstance(mapped, np.memmap)
    a = one_epoch(mapped, "memory-mapped")
    in_memory = np.load(folder / "x_train.npy")  # the same array, read whole into RAM
    b = one_epoch(in_memory, "in memory")
    print(f"memory-mapped throughput = {a['samples_per_second'] / b['samples_per_second']:.0%} of in-memory")
