"""TensorBoard logging during training: loss curves, decoder grids, and the test latents for the Projector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._tensors import as_tensor, to_unit_float
from ..train import Callback, Trainer
from .style import class_name

N_EMBED = 2000  # test points sent to the Embedding Projector, with their thumbnails


class TensorBoardCallback(Callback):
    """Scalars every epoch; after the last epoch, decoder grids and the test latents with image thumbnails."""

    def __init__(self, logdir: str | Path, dataset):
        from torch.utils.tensorboard import SummaryWriter  # optional extra: pip install "latentatlas[tensorboard]"

        self.writer = SummaryWriter(str(logdir))
        self.dataset = dataset

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        step = record["epoch"]
        for key in ("train_loss", "test_loss"):
            if key in record:
                self.writer.add_scalar(f"loss/{key.removesuffix('_loss')}", record[key], step)
        for split, terms in record.get("terms", {}).items():  # each term of the objective
            for name, value in terms.items():
                self.writer.add_scalar(f"terms/{split}/{name}", value, step)
        self.writer.add_scalar("seconds_per_epoch", record["seconds"], step)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        self._log_latents(trainer.model, len(trainer.history))
        self.writer.close()

    def _log_latents(self, model, step: int) -> None:
        from ..metrics import encode
        from .plots import decoder_grid, image_shape

        x, y = self.dataset.flat("test")
        idx = np.linspace(0, len(x) - 1, min(N_EMBED, len(x))).astype(int)
        z = encode(model, x[idx])
        shape = image_shape(self.dataset, model.n_features)
        labels = [class_name(self.dataset.classes, v) for v in y[idx]]
        thumbs = None
        if shape is not None:
            thumbs = to_unit_float(as_tensor(x[idx])).reshape(len(idx), 1, *shape)
        self.writer.add_embedding(torch.as_tensor(z), metadata=labels, label_img=thumbs, global_step=step,
                                  tag="test_latents")
        if shape is not None:
            for chart in model.geometry.charts():
                self.writer.add_figure(f"decoder_grid/{chart.name}", decoder_grid(model, chart, shape, z_data=z), step)
