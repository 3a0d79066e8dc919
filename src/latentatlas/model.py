"""The autoencoder: encoder -> latent geometry -> decoder."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ._limits import check_fits
from .config import RunConfig
from .geometries import Geometry, Posterior, get_geometry
from .nets import build_decoder, build_encoder, init_tutorial_


class Output(NamedTuple):
    logits: Tensor  # (B, n_features) decoder output before the sigmoid
    z: Tensor  # (B, dim) the latent point decoded: a posterior sample in training, its mode in eval mode
    posterior: Posterior


class AutoencoderNet(nn.Module):
    """``decoder(geometry(encoder(x)))`` with a sigmoid on the output; pixels are floats in [0, 1].

    A free-layout run's model also carries its ``map`` (``atlas_map.PlacedMap``: the training images' laid-out
    positions and a neighbour index); :meth:`encode` then places images on that frozen map, and the encoder's own
    pass is :meth:`encode_direct`. Training and the forward pass use the encoder either way.
    """

    def __init__(self, encoder: nn.Module, geometry: Geometry, decoder: nn.Module, map: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.geometry = geometry
        self.decoder = decoder
        self.map = map

    @classmethod
    def from_config(cls, cfg: RunConfig, n_features: int) -> AutoencoderNet:
        """Build the network of a resolved config for inputs of ``n_features`` pixels; the geometry gives the
        encoder's output width and the decoder's input width."""
        geometry = get_geometry(cfg.geometry, cfg.latent_dim)
        widths = [n_features, *cfg.hidden_sizes]
        n_params = sum((a + 1) * b for a, b in zip(widths, [*widths[1:], geometry.encoder_features])) + sum(
            (a + 1) * b for a, b in zip([geometry.dim, *reversed(widths[1:])], [*reversed(widths)]))
        # Weights, gradients and Adam's two moments, in float32: refused in words before torch fails to allocate.
        check_fits(16 * n_params, f"a network of {n_params:,} parameters",
                   "choose smaller hidden_sizes or latent_dim (or a smaller image_size)")
        encoder = build_encoder(n_features, cfg.hidden_sizes, geometry.encoder_features, cfg.activation)
        decoder = build_decoder(geometry.dim, cfg.hidden_sizes, n_features, cfg.activation)
        init_tutorial_(encoder, decoder)
        return cls(encoder, geometry, decoder)

    def forward(self, x: Tensor) -> Output:  # x: (B, n_features)
        posterior = self.geometry(self.encoder(x))
        z = posterior.rsample() if self.training else posterior.mode
        return Output(self.decoder(z), z, posterior)

    def encode(self, x: Tensor) -> Tensor:
        """(B, n_features) -> (B, dim): the image's place refined on the map where the model has one (and its
        ``placement`` says so), else :meth:`encode_direct`."""
        if self.map is None or self.map.placement == "encoder":
            return self.encode_direct(x)
        return self.map.place(x, self.geometry)

    def encode_direct(self, x: Tensor) -> Tensor:
        """(B, n_features) -> (B, dim): the posterior's mode (the point itself for a deterministic geometry)."""
        return self.geometry(self.encoder(x)).mode

    def decode(self, z: Tensor) -> Tensor:
        """(B, dim) -> (B, n_features) pixels in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    @property
    def n_features(self) -> int:
        return self.decoder[-1].out_features


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_table(model: nn.Module) -> list[tuple[str, str, int]]:
    """(name, layer, trainable parameters) for every leaf module that has parameters."""
    rows = []
    for name, mod in model.named_modules():
        n = sum(p.numel() for p in mod.parameters(recurse=False) if p.requires_grad)
        if n:
            shape = f"{mod.in_features} -> {mod.out_features}" if isinstance(mod, nn.Linear) else ""
            rows.append((name, f"{type(mod).__name__} {shape}".strip(), n))
    return rows
