"""A decoder and an encoder attached to a laid-out map (``latentatlas.layout``), trained after the layout.

The decoder learns coordinates -> image, so that every point of the map's space decodes; the encoder is distilled
onto the coordinates (regression), so a new image gets a position in one forward pass, which ``layout.refine`` may
then polish. Both are the tutorial's networks (``nets.build_decoder`` / ``nets.build_encoder``, PReLU,
Kaiming-normal weights but on the last Linear) and train with the project's :class:`~latentatlas.train.Trainer`
(Adam 1e-3, batch 128): the images are the trainer's samples and the coordinates are looked up by the batch's
indices, so nothing here is a second training loop.

Coordinates enter and leave the networks standardised (the map's mean and one overall scale, kept as buffers):
t-SNE-like maps of the plane span tens of kernel lengths, which a PReLU network fed raw fits badly. On the sphere
this is an affine change of the unit vectors, harmless; the encoder's output goes back through the geometry's own
projection (``geometry(h).mode``), so it is always a point of the space and nothing here asks which space it is.

Measured (benchmarks/layout_probe.py --atlas) in docs/maps-research.md, "The decoder and the encoder".
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .errors import LatentAtlasError
from .losses import Batch
from .nets import build_decoder, build_encoder
from .train import Adam, Trainer

HIDDEN = (392, 64)  # the tutorial's encoder widths; the decoder mirrors them (2-64-392-784)
EPOCHS = 60  # on mnist-5k's 4,000 images about 1,900 steps (the probe note's decoder: 60 epochs)
BATCH_SIZE = 128
LEARNING_RATE = 1e-3


class Standardise(nn.Module):
    """z -> (z - centre) / scale, with the map's centre (dim,) and one overall scale kept as buffers."""

    def __init__(self, centre: Tensor, scale: Tensor, inverse: bool = False):
        super().__init__()
        self.register_buffer("centre", centre)
        self.register_buffer("scale", scale)
        self.inverse = inverse

    @classmethod
    def of(cls, coords: Tensor, inverse: bool = False) -> Standardise:
        return cls(coords.mean(0), coords.std().clamp(min=1e-12), inverse)

    def forward(self, z: Tensor) -> Tensor:
        return z * self.scale + self.centre if self.inverse else (z - self.centre) / self.scale


class OntoMap(nn.Module):
    """Encoder output -> map coordinates: un-standardise, then the geometry's projection onto its space."""

    def __init__(self, unstandardise: Standardise, geometry):
        super().__init__()
        self.unstandardise, self.geometry = unstandardise, geometry

    def forward(self, h: Tensor) -> Tensor:
        return self.geometry(self.unstandardise(h)).mode


def fit_decoder(coords, x, geometry, *, epochs: int = EPOCHS, seed: int = 0, hidden=HIDDEN,
                batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE) -> nn.Sequential:
    """Train a decoder from map coordinates to images with BCE on logits.

    Parameters
    ----------
    coords : array of shape (N, geometry.dim)
        The training images' map positions (``layout.layout``).
    x : array of shape (N, ...)
        The images, uint8 0..255 or floats in [0, 1]; flattened to (N, D).
    geometry : Geometry
        The map's space.
    epochs, seed, hidden, batch_size, lr
        Training length, the seed of the weights and of every epoch's shuffle, the tutorial's widths (mirrored),
        batch size and Adam's rate.

    Returns
    -------
    nn.Sequential
        ``Standardise`` then the decoder; its output is logits of shape (B, D): ``torch.sigmoid`` gives pixels.
    """
    z, x = _check(coords, x, geometry)
    torch.manual_seed(seed)
    decoder = nn.Sequential(Standardise.of(z), _kaiming(build_decoder(geometry.dim, hidden, x.shape[1])))

    def loss(model: nn.Module, batch: Batch) -> Tensor:
        return F.binary_cross_entropy_with_logits(model(z[batch.index]), batch.x, reduction="none").sum(1).mean()

    _train(decoder, loss, x, epochs, seed, batch_size, lr)
    return decoder.eval()


def fit_encoder(x, coords, geometry, *, epochs: int = EPOCHS, seed: int = 0, hidden=HIDDEN,
                batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE) -> nn.Sequential:
    """Distil an encoder onto map coordinates: mean squared error to each image's position, in the map's
    standardised units, after the geometry's projection.

    Parameters are as :func:`fit_decoder`'s, the images first.

    Returns
    -------
    nn.Sequential
        The encoder then ``OntoMap``: (B, D) images in [0, 1] -> (B, geometry.dim) points of the space.
    """
    z, x = _check(coords, x, geometry)
    torch.manual_seed(seed)
    onto = OntoMap(Standardise.of(z, inverse=True), geometry)
    encoder = nn.Sequential(_kaiming(build_encoder(x.shape[1], hidden, geometry.encoder_features)), onto)
    scale2 = onto.unstandardise.scale.square()

    def loss(model: nn.Module, batch: Batch) -> Tensor:
        return (model(batch.x) - z[batch.index]).square().sum(1).mean() / scale2

    _train(encoder, loss, x, epochs, seed, batch_size, lr)
    return encoder.eval()


def _train(model: nn.Module, loss, x: Tensor, epochs: int, seed: int, batch_size: int, lr: float) -> None:
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
        raise LatentAtlasError(f"epochs={epochs!r} must be a positive integer")
    Trainer(model, loss, epochs=epochs, batch_size=batch_size, seed=seed, optimizer_factory=Adam(lr),
            progress=False).fit(x)


def _kaiming(net: nn.Sequential) -> nn.Sequential:
    """Kaiming-normal weights on every Linear but the last, as the tutorial's networks start (in place)."""
    for layer in [m for m in net if isinstance(m, nn.Linear)][:-1]:
        nn.init.kaiming_normal_(layer.weight)
    return net


def _check(coords, x, geometry) -> tuple[Tensor, Tensor]:
    """(N, dim) float32 coordinates and (N, D) images, as tensors; one-line errors otherwise."""
    z = np.asarray(coords, dtype=np.float32)
    x = np.asarray(x)
    if z.ndim != 2 or z.shape[1] != geometry.dim or len(z) < 1:
        raise LatentAtlasError(f"coords must have shape (N, {geometry.dim}) for this geometry, got {z.shape}")
    if not np.isfinite(z).all():
        raise LatentAtlasError("coords hold NaN or infinite values; give finite coordinates")
    if len(x) != len(z):
        raise LatentAtlasError(f"coords and images must have one row per image: {len(z)} coords, {len(x)} images")
    return torch.from_numpy(z), torch.from_numpy(np.ascontiguousarray(x.reshape(len(x), -1)))
