"""Joint or afterwards: a free layout laid out together with a decoder's reconstruction, against the pure layout that
the atlas presets use (the decoder fitted to the map afterwards), on mnist-5k (issue 25's ablation).

Each weight trains the preset as ``latentatlas train`` does (63 epochs: the 2,000 steps rule), its map laid out by
latentatlas's engine with ``layout(reconstruction_weight=W)``: each layout step also decodes 256 of the points from
their coordinates and adds W times the binary cross-entropy, its gradient moving both the coordinates and a decoder
of the preset's shape (a throwaway: the run's own decoder is fitted to the finished map as always). Weight 0 is the
pure layout. Prints the run's test 5-NN (refined), encoder 5-NN, trust, test MSE of decode(transform(x)) and round
trip.

    PYTHONPATH=src python benchmarks/layout_joint.py [--presets atlas-2d atlas-s2] [--weights 0 0.1 1 10] [--seed 0]
        [--validation]   # score on a validation split carved from the training images (as sweep chooses)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latentatlas import hardware
from latentatlas.config import RunConfig
from latentatlas.experiments.sweep_spec import VALIDATION
from latentatlas.layout import default_steps, layout
from latentatlas.layout_engines import ENGINES, Engine
from latentatlas.nets import build_decoder, build_encoder, init_tutorial_
from latentatlas.run_training import train_run

EPOCHS = 63  # 2,000 steps of mnist-5k's 4,000 images in batches of 128, as train gives the atlas presets there
SHOWN = ("knn5", "knn5_encoder", "trustworthiness", "mse_test", "round_trip")


def joint_engine(cfg: RunConfig, images: torch.Tensor, weight: float) -> Engine:
    """latentatlas's engine, laying out with a decoder of ``cfg``'s shape trained beside the map at ``weight``."""

    def lay_out(neighbours, geometry, **settings):
        torch.manual_seed(cfg.seed)
        decoder = build_decoder(geometry.dim, cfg.hidden_sizes, images.shape[1], cfg.activation)
        init_tutorial_(build_encoder(images.shape[1], cfg.hidden_sizes, geometry.dim, cfg.activation), decoder)
        return layout(neighbours, geometry, decoder=decoder, images=images, reconstruction_weight=weight,
                      **settings), 1.0

    return Engine(lay_out, default_steps)


def main() -> None:
    print(hardware.header(), flush=True)  # what these figures were measured on
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["atlas-2d", "atlas-s2"])
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 1.0, 10.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="mnist-5k")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--validation", action="store_true",
                   help="lay out 80 %% of the training images and score on the other 20 %% (the test set unused)")
    args = p.parse_args()
    for preset in args.presets:
        for weight in args.weights:
            transforms = (VALIDATION,) if args.validation else ()
            cfg = RunConfig(preset=preset, data=args.data, seed=args.seed, epochs=args.epochs, transforms=transforms,
                            layout_engine="latentatlas").resolved()
            dataset = cfg.data_spec.load()
            images = torch.from_numpy(dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float32) / 255)
            ENGINES["joint"] = joint_engine(cfg, images, weight)  # the registry is the engines' extension point
            cfg = RunConfig(preset=preset, data=args.data, seed=args.seed, epochs=args.epochs, transforms=transforms,
                            layout_engine="joint").resolved()
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                train_run(cfg, Path(folder) / "run", dataset=dataset, progress=False, plot=False)
                metrics = json.loads((Path(folder) / "run" / "metrics.json").read_text())
            shown = "  ".join(f"{k} {metrics[k]:.4f}" for k in SHOWN)
            print(f"{preset} weight {weight:g}: {shown}  ({time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
